"""The outbox's rules without a receiver: the migration (the table equals the model, down and
up again), destinations from the variables and a YAML/JSON file (a wrong value names the
valid ones), one claimer per row under concurrency, leases, order within a study, and the
back-off's bounds. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import random
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from helpers.platform import bare_platform, database_url, migrator, png_bytes, use_home
from medai.platform.dicom.arrival import Arrival

# --- the migration ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_migration_makes_the_table_of_the_model(kind, tmp_path):
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from medai.platform.records.db import Base, make_engine

    use_home(tmp_path)
    with database_url(kind, tmp_path) as url:
        engine = make_engine(url)
        migrate = migrator(engine)

        migrate(command.upgrade, "head")
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        migrate(command.downgrade, "0005")
        with engine.connect() as conn:
            tables = {
                r[0]
                for r in conn.execute(
                    text(
                        "SELECT name FROM sqlite_master WHERE type='table'"
                        if kind == "sqlite"
                        else "SELECT tablename FROM pg_tables WHERE schemaname='public'"
                    )
                )
            }
        assert "outbox" not in tables and "studies" in tables
        migrate(command.upgrade, "head")
        engine.dispose()


# --- destinations ----------------------------------------------------------------------------


def test_destinations_from_the_variables_and_a_file(tmp_path, monkeypatch):
    from medai.settings import Settings

    monkeypatch.setenv("MEDAI_DICOM_SEND_TO", "PACS@pacs.local:104")
    monkeypatch.setenv("MEDAI_DICOMWEB_URL", "https://user:secret@pacs.local/dicom-web/")
    monkeypatch.setenv("MEDAI_FHIR_URL", "http://his.local/fhir")
    monkeypatch.setenv("MEDAI_HL7_MLLP", "his.local:2575")
    yaml_file = tmp_path / "d.yaml"
    yaml_file.write_text(
        "destinations:\n"
        "  - {name: pacs-2, kind: dicom, ae_title: ARCHIVE, host: 10.0.0.9, port: 11112,\n"
        "     events: [signed]}\n"
        "  - {name: ris, kind: hl7, host: ris.local, port: 6661, receiving_facility: RAD,\n"
        "     events: [analysed, signed]}\n"
    )
    monkeypatch.setenv("MEDAI_DESTINATIONS_FILE", str(yaml_file))
    dests = {d.name: d for d in Settings().destinations()}
    assert list(dests) == ["dicom", "dicomweb", "fhir", "hl7", "pacs-2", "ris"]
    assert (dests["dicom"].ae_title, dests["dicom"].port, dests["dicom"].calling_ae) == (
        "PACS",
        104,
        "MEDAI",
    )
    assert dests["dicomweb"].where == "https://pacs.local/dicom-web"  # no credentials shown
    assert dests["hl7"].events == ("signed",) and dests["fhir"].events == ("analysed", "signed")
    assert dests["pacs-2"].events == ("signed",) and dests["ris"].receiving_facility == "RAD"
    json_file = tmp_path / "d.json"
    json_file.write_text(
        json.dumps(
            [{"name": "fhir-2", "kind": "fhir", "url": "http://x/fhir", "id_prefix": "ank-"}]
        )
    )
    monkeypatch.setenv("MEDAI_DESTINATIONS_FILE", str(json_file))
    assert Settings().destinations()[-1].id_prefix == "ank-"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (
            "destinations:\n  - {name: a, kind: ftp, host: h}\n",
            "unknown kind 'ftp'; valid: dicom, dicomweb, fhir, hl7",
        ),
        ("destinations:\n  - {name: a, host: h}\n", "kind: dicom, dicomweb, fhir, hl7"),
        (
            "destinations:\n  - {name: a, kind: hl7, host: h, port: 1, colour: red}\n",
            "unknown field(s) 'colour' for a hl7 destination; valid: name, events",
        ),
        (
            "destinations:\n  - {name: a, kind: fhir, url: 'x', events: [sent]}\n",
            "Input should be 'analysed' or 'signed'",
        ),
        ("destinations:\n  - {name: a, kind: fhir, url: 'ftp://x'}\n", "not an http"),
        (
            "destinations:\n  - {name: a, kind: dicom, ae_title: 'A\\\\B', host: h, port: 1}\n",
            "AE title",
        ),
        ("destinations:\n  - {name: fhir, kind: fhir, url: 'http://x'}\n", "given twice"),
        ("destinations: [\n", "not valid YAML"),
    ],
)
def test_a_wrong_destination_is_refused_with_the_valid_values(tmp_path, monkeypatch, body, says):
    from medai.settings import Settings

    monkeypatch.setenv("MEDAI_FHIR_URL", "http://his.local/fhir")
    path = tmp_path / "d.yaml"
    path.write_text(body)
    monkeypatch.setenv("MEDAI_DESTINATIONS_FILE", str(path))
    with pytest.raises(ValueError, match="destination") as err:
        Settings()
    assert says in str(err.value)


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("MEDAI_DICOM_SEND_TO", "pacs.local:104"),
        ("MEDAI_DICOM_SEND_TO", "PACS@pacs.local"),
        ("MEDAI_HL7_MLLP", "his.local"),
        ("MEDAI_HL7_MLLP", "his.local:99999"),
        ("MEDAI_FHIR_URL", "his.local/fhir"),
    ],
)
def test_a_wrong_destination_variable_is_refused(monkeypatch, var, value):
    from medai.settings import Settings

    monkeypatch.setenv(var, value)
    with pytest.raises(ValueError):
        Settings()


# --- claims, leases, order -------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def plat(request, tmp_path, tfidf_model_dir, tiny_imaging_dir):
    with bare_platform(request.param, tmp_path, tfidf_model_dir, tiny_imaging_dir) as p:
        yield p


def enqueue(p, n_studies: int, dests) -> list[int]:
    """Studies, each with a signed-looking report version 2, enqueued as ``signed``."""
    from medai.platform.delivery import outbox
    from medai.platform.records.tables import ReportVersion, User
    from medai.platform.worklist import filing

    ids = []
    for i in range(n_studies):
        sha = p.store.put_bytes(png_bytes(i))
        with p.db.session() as db:
            user = db.scalar(select(User))
            s, _ = filing.create(
                db,
                Arrival(sha=sha, size=1, content_type="image/png", task="cxr", uploaded_by=user.id),
            )
            for v in (1, 2):
                row = ReportVersion(
                    study_id=s.id,
                    version=v,
                    status="final",
                    source="human",
                    sections={},
                    citations=[],
                    findings=[],
                    signed_by=user.id,
                )
                db.add(row)
                db.flush()
                assert outbox.on_signed(db, s, row, destinations=dests)
                assert outbox.on_signed(db, s, row, destinations=dests) == []  # once
            ids.append(s.id)
    return ids


def test_concurrent_claimers_never_share_a_row(plat):
    from medai.destinations_config import FhirDestination
    from medai.platform.delivery import outbox
    from medai.platform.records.db import utcnow

    dests = [FhirDestination(name=f"f{i}", kind="fhir", url="http://x") for i in range(3)]
    enqueue(plat, 4, dests)  # 4 studies × 2 versions × 3 destinations = 24 rows
    now = utcnow()
    claimed: list[int] = []
    lock = threading.Lock()

    def claimer(name: str) -> None:
        while True:
            with plat.db.session() as db:
                item = outbox.claim(db, name, now, 60)
                if item is None:
                    return
                # the next version of the study waits until this one is done
                outbox.mark_delivered(db, item.id, name, now, 1)
            with lock:
                claimed.append(item.id)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(claimed) == 24 and len(set(claimed)) == 24


def test_leases_order_and_retries(plat):
    from medai.destinations_config import Hl7Destination
    from medai.platform.delivery import outbox
    from medai.platform.records.db import utcnow
    from medai.platform.records.tables import OutboxItem

    dest = Hl7Destination(name="his", kind="hl7", host="h", port=1)
    (sid,) = enqueue(plat, 1, [dest])
    now = utcnow()
    with plat.db.session() as db:
        first = outbox.claim(db, "a", now, 60)
        assert first.report_version == 1 and first.state == "sending"
        assert outbox.claim(db, "b", now, 60) is None  # v2 waits behind v1 of its study
    with plat.db.session() as db:
        assert outbox.mark_retry(db, first.id, "a", now, 30, "destination_unavailable", "down")
        assert outbox.claim(db, "b", now, 60) is None  # still before v2
        assert not outbox.mark_delivered(db, first.id, "a", now, 1)  # not held any more
    with plat.db.session() as db:
        again = outbox.claim(db, "b", now + timedelta(seconds=31), 60)
        assert again.id == first.id and again.attempts == 2
    later = now + timedelta(seconds=100)  # b died holding it: its lease ran out
    with plat.db.session() as db:
        taken = outbox.claim(db, "c", later, 60)
        assert taken.id == first.id and taken.worker == "c"
        assert not outbox.mark_delivered(db, first.id, "b", later, 1)  # b is too late
        assert outbox.mark_delivered(db, first.id, "c", later, 1)
    with plat.db.session() as db:
        second = outbox.claim(db, "c", later, 60)
        assert second.report_version == 2
        assert outbox.mark_final(
            db, second.id, "c", later, "failed", "destination_rejected", "HTTP 400"
        )
    with plat.db.reader() as db:
        rows = {
            r.report_version: r
            for r in db.scalars(select(OutboxItem).where(OutboxItem.study_id == sid))
        }
        assert (rows[1].state, rows[2].state) == ("delivered", "failed")
        (summary,) = outbox.summary(db, [dest])
        assert summary["counts"]["delivered"] == 1 and summary["counts"]["failed"] == 1
        assert summary["last_problem"]["reason"] == "HTTP 400"


def test_the_back_off_doubles_up_to_its_cap_with_bounded_jitter():
    from medai.platform.delivery.outbox import Backoff

    b = Backoff(base_s=10, max_s=300, jitter=0.2)
    rng = random.Random(1)
    for attempts in range(1, 40):
        raw = min(300, 10 * 2 ** (attempts - 1))
        delays = [b.delay(attempts, rng) for _ in range(50)]
        assert all(raw * 0.8 <= d <= raw for d in delays), attempts
        assert len({round(d, 6) for d in delays}) > 1  # jittered
    assert Backoff(10, 300, 0).delay(1000, rng) == 300  # no overflow after many failures
