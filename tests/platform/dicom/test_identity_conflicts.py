"""The right patient, always: an instance that names another patient or order than the study of
its StudyInstanceUID, or a stored SOP instance sent again with other content, is quarantined as
an identity conflict at every way in (DICOM node, STOW-RS, upload), never merged or analysed;
nothing of the study it named is exported or delivered until a radiologist reassigns or rejects
it; admins see it masked. A property test: no instance ever joins a study of another patient."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from helpers.dicom import make_dicom, need_dcmtk, storescu
from helpers.platform import bare_platform, bearer, clinic, png_bytes, wait_status
from medai.platform.dicom.arrival import Arrival

pytestmark = [pytest.mark.dcmtk]

A = {"patient_id": "PID-A-111", "name": "Hasta^Birinci", "accession": "ACC-A"}
B = {"patient_id": "PID-B-222", "name": "Hasta^Ikinci", "accession": "ACC-B"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(request, tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    need_dcmtk()
    from medai.settings import get_settings

    home = tmp_path_factory.mktemp(f"conflicts-{request.param}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDAI_DICOM_ALLOW", '["MODALITY"]')
        with clinic(request.param, home, tfidf_model_dir, tiny_imaging_dir, dicom_port=0) as (
            app,
            client,
        ):
            files = home / "sent"
            files.mkdir()
            yield app, client, bearer(client, "rad1"), files
    get_settings.cache_clear()


def _count(app, table) -> int:
    with app.state.platform.db.session() as db:
        return db.scalar(select(func.count()).select_from(table))


def _conflicts(client, headers, **params) -> dict:
    r = client.get("/api/v1/conflicts", headers=headers, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def _two_patients(folder, study_uid: str, accession: str, **b_extra) -> tuple[bytes, bytes]:
    """Patient A's instance of a study, and patient B's carrying the same UIDs' study and
    accession (the bytes of each)."""
    a = make_dicom(
        folder / "a.dcm",
        "DX",
        study=study_uid,
        accession=accession,
        name=A["name"],
        patient_id=A["patient_id"],
    )
    b = make_dicom(
        folder / "b.dcm",
        "DX",
        study=study_uid,
        accession=accession,
        name=B["name"],
        patient_id=B["patient_id"],
        seed=5,
        **b_extra,
    )
    return a.read_bytes(), b.read_bytes()


def _study_of(client, headers, study_id: int) -> dict:
    r = client.get(f"/api/v1/studies/{study_id}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_another_patients_instance_with_the_same_study_uid_is_quarantined_at_the_node(site):
    from pydicom.uid import generate_uid

    from medai.platform.records.tables import DicomInstance, Job

    app, client, rad, files = site
    study_uid = generate_uid()
    a = make_dicom(
        files / "a.dcm",
        "DX",
        study=study_uid,
        view="PA",
        accession=A["accession"],
        name=A["name"],
        patient_id=A["patient_id"],
    )
    b = make_dicom(
        files / "b.dcm",
        "DX",
        study=study_uid,
        view="PA",
        accession=B["accession"],
        name=B["name"],
        patient_id=B["patient_id"],
        seed=7,
    )
    port = app.state.dicom_node.port
    assert storescu(port, a).returncode == 0
    jobs_before = _count(app, Job)
    sent = storescu(port, b, options=("-d",))
    assert sent.returncode != 0  # the modality is told it failed, and logs why
    assert "identity conflict" in (sent.stdout + sent.stderr)
    assert _count(app, Job) == jobs_before  # nothing analysed
    found = client.get("/api/v1/studies", headers=rad, params={"accession": A["accession"]}).json()
    assert found["total"] == 1
    study = _study_of(client, rad, found["items"][0]["id"])
    assert study["dicom"]["instances"] == 1 and study["dicom"]["patient_id"] == A["patient_id"]
    assert len(study["identity_conflicts"]) == 1
    with app.state.platform.db.session() as db:
        assert (
            db.scalar(
                select(func.count())
                .select_from(DicomInstance)
                .where(DicomInstance.study_id == study["id"])
            )
            == 1
        )
    listed = _conflicts(client, rad)
    item = next(c for c in listed["items"] if c["study_id"] == study["id"])
    assert item["reason"] == "patient_mismatch" and item["masked"] is False
    assert {"PatientID", "PatientName", "AccessionNumber"} <= set(item["fields"])
    assert item["study"]["patient_id"] == A["patient_id"]
    assert item["incoming"]["patient_id"] == B["patient_id"]
    assert item["incoming"]["patient_name"] == B["name"]
    assert item["calling_ae"] == "MODALITY" and item["source"] == "dicom"
    # the same instance again (a modality retrying) is the same conflict, not a second one
    storescu(port, b)
    assert len(_study_of(client, rad, study["id"])["identity_conflicts"]) == 1
    # nothing of the study leaves while it is in doubt
    r = client.get(f"/api/v1/studies/{study['id']}/report/fhir", headers=rad)
    assert r.status_code in (404, 409)  # 404 only while no report exists yet
    wait_status(client, rad, study["id"], {"ai_drafted"})
    r = client.get(f"/api/v1/studies/{study['id']}/report/fhir", headers=rad)
    assert r.status_code == 409 and r.json()["code"] == "identity_conflict"
    # an admin sees the conflict, masked; a clinician may not
    admin = bearer(client, "admin")
    masked = next(c for c in _conflicts(client, admin)["items"] if c["id"] == item["id"])
    assert masked["masked"] is True and B["patient_id"] not in str(masked)
    assert set(masked["incoming"].values()) | set(masked["study"].values()) <= {"•••", None}
    assert masked["fields"] == item["fields"] and masked["sop_uid"] is None
    assert client.post(f"/api/v1/conflicts/{item['id']}/reject", headers=admin).status_code == 403
    assert client.get("/api/v1/conflicts", headers=bearer(client, "clin")).status_code == 403
    # the radiologist reassigns it: a study of patient B of its own, analysed
    r = client.post(f"/api/v1/conflicts/{item['id']}/reassign", headers=rad)
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["state"] == "reassigned" and done["resolved_by"] == "rad1"
    new = wait_status(client, rad, done["resolved_study_id"], {"ai_drafted"})
    assert new["dicom"]["patient_id"] == B["patient_id"]
    assert new["dicom"]["patient_name"] == B["name"] and new["dicom"]["study_uid"] is None
    assert _study_of(client, rad, study["id"])["identity_conflicts"] == []
    # the modality sends it again: it is where the radiologist put it, nothing new opens
    assert storescu(port, b).returncode == 0
    assert _study_of(client, rad, study["id"])["identity_conflicts"] == []
    assert (
        client.get("/api/v1/studies", headers=rad, params={"accession": B["accession"]}).json()[
            "total"
        ]
        == 1
    )
    r = client.get(f"/api/v1/studies/{study['id']}/report/fhir", headers=rad)
    assert r.status_code == 200
    bundle = r.json()
    assert B["patient_id"] not in str(bundle) and A["patient_id"] in str(bundle)
    assert (
        client.post(f"/api/v1/conflicts/{item['id']}/reject", headers=rad).status_code == 409
    )  # decided once


def test_a_resent_sop_instance_with_other_content_is_a_conflict(site):
    from pydicom.uid import generate_uid

    app, client, rad, files = site
    study_uid, series, sop = generate_uid(), generate_uid(), generate_uid()
    first = make_dicom(
        files / "s1.dcm",
        "DX",
        study=study_uid,
        series=series,
        sop=sop,
        accession="SOP-1",
        name=A["name"],
        patient_id=A["patient_id"],
    )
    again = make_dicom(
        files / "s2.dcm",
        "DX",
        study=study_uid,
        series=series,
        sop=sop,
        accession="SOP-1",
        name=A["name"],
        patient_id=A["patient_id"],
        seed=9,
    )  # other pixels
    other = make_dicom(
        files / "s3.dcm",
        "DX",
        study=study_uid,
        sop=sop,
        accession="SOP-1",
        name=B["name"],
        patient_id=B["patient_id"],
        seed=11,
    )
    port = app.state.dicom_node.port
    assert storescu(port, first).returncode == 0
    assert storescu(port, first).returncode == 0  # the same bytes: a duplicate, not a conflict
    sid = client.get("/api/v1/studies", headers=rad, params={"accession": "SOP-1"}).json()["items"][
        0
    ]["id"]
    assert _study_of(client, rad, sid)["identity_conflicts"] == []
    assert storescu(port, again).returncode != 0
    assert storescu(port, other).returncode != 0
    rows = [c for c in _conflicts(client, rad)["items"] if c["study_id"] == sid]
    assert len(rows) == 2 and {c["reason"] for c in rows} == {"sop_content_differs"}
    by_pid = {c["incoming"]["patient_id"]: c for c in rows}
    assert by_pid[A["patient_id"]]["fields"] == ["PixelData"]
    assert "PatientID" in by_pid[B["patient_id"]]["fields"]
    for c in rows:  # rejected: the study is released, the files go
        r = client.post(f"/api/v1/conflicts/{c['id']}/reject", headers=rad)
        assert r.status_code == 200 and r.json()["state"] == "rejected"
    assert _study_of(client, rad, sid)["identity_conflicts"] == []
    assert _study_of(client, rad, sid)["dicom"]["instances"] == 1
    # sent again after the rejection: refused again, the decision stands (no new conflict)
    assert storescu(port, other).returncode != 0
    assert _study_of(client, rad, sid)["identity_conflicts"] == []
    assert (
        len([c for c in _conflicts(client, rad, state="rejected")["items"] if c["study_id"] == sid])
        == 2
    )


def test_an_upload_of_another_patients_dicom_is_a_named_409(site, tmp_path):
    from pydicom.uid import generate_uid

    _app, client, rad, _ = site
    study_uid = generate_uid()
    a, b = _two_patients(tmp_path, study_uid, "UP-A")
    r = client.post(
        "/api/v1/studies",
        headers=rad,
        data={"task": "cxr"},
        files={"file": ("a.dcm", a, "application/dicom")},
    )
    assert r.status_code == 201, r.text
    r = client.post(
        "/api/v1/studies",
        headers=rad,
        data={"task": "cxr"},
        files={"file": ("b.dcm", b, "application/dicom")},
    )
    assert r.status_code == 409 and r.json()["code"] == "identity_conflict", r.text
    assert {e["loc"][1] for e in r.json()["errors"]} == {"PatientID", "PatientName"}
    assert B["patient_id"] not in r.text  # names attributes, not values
    # the same patient under another pseudonymous reference than the study's: a conflict
    other_uid = generate_uid()
    c1 = make_dicom(
        tmp_path / "c1.dcm",
        "DX",
        study=other_uid,
        accession="UP-C",
        name=A["name"],
        patient_id=A["patient_id"],
    ).read_bytes()
    c2 = make_dicom(
        tmp_path / "c2.dcm",
        "DX",
        study=other_uid,
        accession="UP-C",
        name=A["name"],
        patient_id=A["patient_id"],
        seed=6,
    ).read_bytes()
    r = client.post(
        "/api/v1/studies",
        headers=rad,
        data={"task": "cxr", "patient_ref": "P-1"},
        files={"file": ("c1.dcm", c1, "application/dicom")},
    )
    assert r.status_code == 201, r.text
    r = client.post(
        "/api/v1/studies",
        headers=rad,
        data={"task": "cxr", "patient_ref": "P-2"},
        files={"file": ("c2.dcm", c2, "application/dicom")},
    )
    assert r.status_code == 409 and r.json()["errors"][0]["loc"] == ["file", "patient_ref"]
    # a name written in other letter case and with empty trailing components is the same
    d = make_dicom(
        tmp_path / "d.dcm",
        "DX",
        study=study_uid,
        accession="UP-A",
        name="HASTA^BIRINCI^^",
        patient_id=A["patient_id"],
        seed=8,
    ).read_bytes()
    r = client.post(
        "/api/v1/studies",
        headers=rad,
        data={"task": "cxr"},
        files={"file": ("d.dcm", d, "application/dicom")},
    )
    assert r.status_code == 200, r.text


def test_stow_rs_names_the_quarantined_instance_as_failed(site, tmp_path):
    from pydicom.uid import generate_uid

    _app, client, rad, _ = site
    a, b = _two_patients(tmp_path, generate_uid(), "STOW-A", PatientBirthDate="19800101")
    boundary = uuid.uuid4().hex
    body = (
        b"".join(
            b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + p + b"\r\n"
            for p in (a, b)
        )
        + b"--"
        + boundary.encode()
        + b"--\r\n"
    )
    r = client.post(
        "/api/v1/dicomweb/studies",
        content=body,
        headers={
            **rad,
            "content-type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        },
    )
    assert r.status_code == 202, r.text
    failed = r.json()["00081198"]["Value"]
    assert len(failed) == 1 and failed[0]["00081197"]["Value"] == [0xC001]


def test_held_deliveries_wait_for_the_decision(tmp_path, tfidf_model_dir, tiny_imaging_dir):
    from medai.destinations_config import FhirDestination
    from medai.platform.delivery import outbox
    from medai.platform.dicom import identity as dicom
    from medai.platform.dicom import identity_conflicts as conflicts
    from medai.platform.records.db import utcnow
    from medai.platform.records.tables import ReportVersion, User
    from medai.platform.worklist import filing

    dest = FhirDestination(name="ehr", kind="fhir", url="http://x")
    with bare_platform("sqlite", tmp_path, tfidf_model_dir, tiny_imaging_dir) as p:
        sha = p.store.put_bytes(png_bytes(1))
        a = dicom.DicomIdentity(
            patient_id="A",
            patient_name="X^Y",
            study_uid="1.2.3",
            series_uid="1.2.3.1",
            sop_uid="1.2.3.1.1",
            sop_class="1.2",
        )
        b = dicom.DicomIdentity(
            patient_id="B",
            patient_name="Z^W",
            study_uid="1.2.3",
            series_uid="1.2.3.2",
            sop_uid="1.2.3.2.1",
            sop_class="1.2",
        )
        with p.db.session() as db:
            user = db.scalar(select(User))
            first = filing.file_study(
                db,
                Arrival(
                    sha=sha,
                    size=1,
                    content_type="image/png",
                    task="cxr",
                    uploaded_by=user.id,
                    identity=a,
                    source="dicom",
                ),
            )
            second = filing.file_study(
                db,
                Arrival(
                    sha=sha + "",
                    size=1,
                    content_type="image/png",
                    task="cxr",
                    uploaded_by=user.id,
                    identity=b,
                    source="dicom",
                ),
            )
            assert second.outcome == "conflict" and second.job is None
            row = ReportVersion(
                study_id=first.study.id,
                version=1,
                status="final",
                source="human",
                sections={},
                citations=[],
                findings=[],
                signed_by=user.id,
            )
            db.add(row)
            db.flush()
            outbox.on_signed(db, first.study, row, destinations=[dest])
            cid, sid = second.conflict.id, first.study.id
        with p.db.session() as db:
            assert outbox.claim(db, "w", utcnow(), 60) is None  # held
            (item,), _ = outbox.items(db, state="held")
            assert outbox.as_dict(item, True)["state"] == "held"
            counts = outbox.summary(db, [dest])[0]["counts"]
            assert counts["held"] == 1 and counts["queued"] == 0
        with p.db.session() as db:
            conflicts.reject(db, cid, "rad1", utcnow())
        with p.db.session() as db:
            got = outbox.claim(db, "w", utcnow(), 60)
            assert got is not None and got.study_id == sid


def test_an_orphaned_delivery_of_a_study_in_conflict_is_not_reclaimed(
    tmp_path, tfidf_model_dir, tiny_imaging_dir
):
    from datetime import timedelta

    from medai.destinations_config import FhirDestination
    from medai.platform.delivery import outbox
    from medai.platform.dicom import identity as dicom
    from medai.platform.records.db import utcnow
    from medai.platform.records.tables import ReportVersion, User
    from medai.platform.worklist import filing

    dest = FhirDestination(name="ehr", kind="fhir", url="http://x")
    with bare_platform("sqlite", tmp_path, tfidf_model_dir, tiny_imaging_dir) as p:
        sha = p.store.put_bytes(png_bytes(2))
        a = dicom.DicomIdentity(
            patient_id="A",
            study_uid="1.2.4",
            series_uid="1.2.4.1",
            sop_uid="1.2.4.1.1",
            sop_class="1.2",
        )
        b = dicom.DicomIdentity(
            patient_id="B",
            study_uid="1.2.4",
            series_uid="1.2.4.2",
            sop_uid="1.2.4.2.1",
            sop_class="1.2",
        )
        now = utcnow()
        with p.db.session() as db:
            user = db.scalar(select(User))
            first = filing.file_study(
                db,
                Arrival(
                    sha=sha,
                    size=1,
                    content_type="image/png",
                    task="cxr",
                    uploaded_by=user.id,
                    identity=a,
                    source="dicom",
                ),
            )
            row = ReportVersion(
                study_id=first.study.id,
                version=1,
                status="final",
                source="human",
                sections={},
                citations=[],
                findings=[],
                signed_by=user.id,
            )
            db.add(row)
            db.flush()
            outbox.on_signed(db, first.study, row, destinations=[dest])
        with p.db.session() as db:
            claimed = outbox.claim(db, "w1", now, 60)  # then the sender dies
        with p.db.session() as db:
            got = filing.file_study(
                db,
                Arrival(
                    sha=sha,
                    size=1,
                    content_type="image/png",
                    task="cxr",
                    uploaded_by=db.scalar(select(User)).id,
                    identity=b,
                    source="dicom",
                ),
            )
            assert got.outcome == "conflict"
        with p.db.session() as db:  # its lease ran out, but the study is in doubt now
            assert outbox.claim(db, "w2", now + timedelta(seconds=120), 60) is None
        with p.db.session() as db:  # a sender that claimed before the conflict puts it back
            assert outbox.mark_held(db, claimed.id, "w1", now)
            (item,), _ = outbox.items(db, state="held")
            assert item.attempts == 0


def test_two_people_deciding_one_conflict_at_once_make_one_decision(
    tmp_path, tfidf_model_dir, tiny_imaging_dir
):
    import threading

    from medai.platform.dicom import identity as dicom
    from medai.platform.dicom import identity_conflicts as conflicts
    from medai.platform.records.db import utcnow
    from medai.platform.records.tables import Study, User
    from medai.platform.worklist import filing

    with bare_platform("postgresql", tmp_path, tfidf_model_dir, tiny_imaging_dir) as p:
        sha = p.store.put_bytes(png_bytes(3))
        with p.db.session() as db:
            user = db.scalar(select(User))
            for pid, series in (("A", "1"), ("B", "2")):
                got = filing.file_study(
                    db,
                    Arrival(
                        sha=sha,
                        size=1,
                        content_type="image/png",
                        task="cxr",
                        uploaded_by=user.id,
                        source="dicom",
                        identity=dicom.DicomIdentity(
                            patient_id=pid,
                            study_uid="1.2.5",
                            series_uid=f"1.2.5.{series}",
                            sop_uid=f"1.2.5.{series}.1",
                            sop_class="1.2",
                        ),
                    ),
                )
            cid = got.conflict.id
        barrier, outcomes = threading.Barrier(2), []

        def decide(op: str) -> None:
            try:
                with p.db.session() as db:
                    barrier.wait(10)
                    if op == "reassign":
                        filing.reassign_conflict(db, cid, "rad1", utcnow())
                    else:
                        conflicts.reject(db, cid, "rad2", utcnow())
                outcomes.append(op)
            except conflicts.ConflictError as exc:
                outcomes.append(exc.code)

        threads = [threading.Thread(target=decide, args=(op,)) for op in ("reassign", "reject")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(outcomes) in (["conflict", "reassign"], ["conflict", "reject"])
        with p.db.session() as db:
            row = conflicts.get(db, cid)
            made = db.scalar(select(func.count()).select_from(Study))
            assert (row.state, made) in (("reassigned", 2), ("rejected", 1))


def test_names_in_other_scripts_are_compared_group_by_group():
    from medai.platform.dicom.identity import disagreements

    def differ(a: str, b: str) -> bool:
        return disagreements({"patient_name": a}, {"patient_name": b}) == ["PatientName"]

    assert differ("=山田^太郎", "=佐藤^花子")  # only ideographic, different people
    assert not differ("YAMADA^TARO=山田^太郎", "Yamada^Taro")
    assert differ("YAMADA^TARO=山田^太郎", "YAMADA^TARO=佐藤^花子")
    assert differ("YAMADA^TARO", "=山田^太郎")  # nothing to compare: not taken as the same
    assert not differ("YILMAZ^AYSE^^", "Yilmaz^Ayse") and not differ("", "")


# --- the property: no instance ever joins a study of another patient --------------------------

PATIENTS = [
    ("P1", "Ada^Bir", "19700101", "ACC1"),
    ("P2", "Ada^Bir", "19700101", "ACC1"),
    ("P1", "Ada^Iki", "19700101", "ACC1"),
    ("P1", "Ada^Bir", "19800101", "ACC1"),
    ("P1", "Ada^Bir", "19700101", "ACC2"),
    ("P1", "ADA^BIR^", "19700101", "ACC1"),
]
instance = st.tuples(
    st.integers(0, len(PATIENTS) - 1),
    st.integers(0, 1),  # patient, study
    st.integers(0, 3),
    st.integers(0, 1),
)  # SOP, content


@pytest.fixture(scope="module")
def bare(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    with bare_platform(
        "sqlite", tmp_path_factory.mktemp("prop"), tfidf_model_dir, tiny_imaging_dir
    ) as p:
        yield p


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(instance, min_size=1, max_size=12))
def test_no_instance_ever_joins_a_study_of_another_patient(bare, sent):
    from medai.platform.dicom import identity as dicom
    from medai.platform.records.tables import DicomInstance, IdentityConflict, Study, User
    from medai.platform.worklist import filing

    run = uuid.uuid4().int % 10**12
    filed: dict[str, tuple] = {}  # SOP UID -> (patient, content) of the copy that was filed
    with bare.db.session() as db:
        user = db.scalar(select(User))
        for patient, study, sop, content in sent:
            pid, name, birth, acc = PATIENTS[patient]
            ident = dicom.DicomIdentity(
                patient_id=pid,
                patient_name=name,
                birth_date=birth,
                accession=acc,
                study_uid=f"1.9.{run}.{study}",
                series_uid=f"1.9.{run}.{study}.1",
                sop_uid=f"1.9.{run}.{study}.1.{sop}",
                sop_class="1.2",
            )
            sha = f"{run:x}-{patient}-{study}-{sop}-{content}".ljust(64, "0")[:64]
            got = filing.file_study(
                db,
                Arrival(
                    sha=sha,
                    size=1,
                    content_type="image/png",
                    task="cxr",
                    uploaded_by=user.id,
                    identity=ident,
                    source="dicom",
                ),
            )
            if got.outcome in ("new", "joined", "routed"):
                filed[ident.sop_uid] = (patient, sha)
        for sop_uid, (patient, sha) in filed.items():
            inst = db.scalar(select(DicomInstance).where(DicomInstance.sop_uid == sop_uid))
            assert inst.file_sha256 == sha  # a stored copy is never replaced
            study = db.get(Study, inst.study_id)
            known = dicom.known_patient(study)
            pid, name, birth, acc = PATIENTS[patient]
            mine = {
                "patient_id": pid,
                "patient_name": name,
                "birth_date": birth,
                "accession": acc,
                "issuer": "",
            }
            assert dicom.disagreements(known, mine) == []
        for c in db.scalars(select(IdentityConflict)):
            assert c.fields  # every conflict names what disagreed


# --- no false conflicts, no missed ones (issue 57: 5, 6, 7) -----------------------------------


def _one_study(client, headers, accession: str) -> dict:
    found = client.get("/api/v1/studies", headers=headers, params={"accession": accession}).json()
    assert found["total"] == 1, found
    return _study_of(client, headers, found["items"][0]["id"])


def test_a_turkish_name_written_in_other_letter_case_joins_its_study(site):
    from pydicom.uid import generate_uid

    app, client, rad, files = site
    study_uid = generate_uid()
    common = {
        "study": study_uid,
        "accession": "TR-CASE",
        "patient_id": "TR-PID-57",
        "SpecificCharacterSet": "ISO_IR 192",
    }
    first = make_dicom(files / "tr1.dcm", "DX", name="ŞAHİN^GÜLŞEN", **common)
    second = make_dicom(files / "tr2.dcm", "DX", name="şahin^gülşen", seed=3, **common)
    third = make_dicom(files / "tr3.dcm", "DX", name="SAHIN^GULSEN", seed=4, **common)
    port = app.state.dicom_node.port
    assert storescu(port, first).returncode == 0
    assert storescu(port, second).returncode == 0  # the PACS lower-cased it: the same person
    study = _one_study(client, rad, "TR-CASE")
    assert study["identity_conflicts"] == [] and study["dicom"]["instances"] == 2
    assert storescu(port, third).returncode != 0  # Ş is not S: still another name
    (row,) = [c for c in _conflicts(client, rad)["items"] if c["study_id"] == study["id"]]
    assert row["fields"] == ["PatientName"]
    assert client.post(f"/api/v1/conflicts/{row['id']}/reject", headers=rad).status_code == 200


def test_the_same_instance_resent_in_implicit_vr_is_no_conflict(site):
    from medai.platform.records.tables import DicomInstance, IdentityConflict

    app, client, rad, files = site
    sent = make_dicom(files / "xi.dcm", "DX", accession="RESEND-XI", patient_id="PID-XI")
    port = app.state.dicom_node.port
    assert storescu(port, sent).returncode == 0  # explicit VR little endian, as the file is
    again = storescu(port, sent, options=("-xi",))  # the same instance in implicit VR
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Little Endian Implicit" in again.stdout + again.stderr  # dcmtk converted it
    study = _one_study(client, rad, "RESEND-XI")
    assert study["identity_conflicts"] == [] and study["dicom"]["instances"] == 1
    with app.state.platform.db.session() as db:
        assert not db.scalars(
            select(IdentityConflict).where(IdentityConflict.study_id == study["id"])
        ).all()
        (inst,) = db.scalars(select(DicomInstance).where(DicomInstance.study_id == study["id"]))
        assert inst.file_sha256 == study["file"]["sha256"]  # the stored copy stays


def test_a_resend_with_a_corrected_header_is_held_naming_it(site):
    """The same pixels re-sent with the laterality corrected: not a duplicate to drop (the
    stale copy kept, the correction lost), a conflict naming ImageLaterality for a person."""
    import pydicom

    app, client, rad, files = site
    sent = make_dicom(files / "lat.dcm", "DX", accession="RESEND-LAT", patient_id="PID-LAT")
    ds = pydicom.dcmread(sent)
    ds.ImageLaterality = "R"
    corrected = files / "lat-r.dcm"
    ds.save_as(corrected)
    port = app.state.dicom_node.port
    assert storescu(port, sent).returncode == 0
    assert storescu(port, corrected, options=("-xi",)).returncode != 0  # held, said so
    study = _one_study(client, rad, "RESEND-LAT")
    (row,) = [c for c in _conflicts(client, rad)["items"] if c["study_id"] == study["id"]]
    assert row["reason"] == "sop_content_differs" and row["fields"] == ["ImageLaterality"]


def test_an_instance_received_by_c_store_then_uploaded_is_the_same_instance(site, tmp_path):
    from pydicom.uid import generate_uid

    app, client, rad, files = site
    study_uid = generate_uid()
    sent = make_dicom(files / "up.dcm", "DX", study=study_uid, accession="RESEND-UP")
    port = app.state.dicom_node.port
    assert storescu(port, sent).returncode == 0
    study = _one_study(client, rad, "RESEND-UP")
    r = client.post(
        "/api/v1/studies",
        headers=rad,
        data={"task": "cxr"},
        files={"file": ("up.dcm", sent.read_bytes(), "application/dicom")},
    )
    assert r.status_code == 200, r.text  # the known study, nothing new
    assert r.json()["id"] == study["id"] and r.json()["identity_conflicts"] == []
    assert _one_study(client, rad, "RESEND-UP")["dicom"]["instances"] == 1
    # and the other way round: uploaded first, then sent in implicit VR by the node
    later = make_dicom(tmp_path / "up2.dcm", "DX", study=study_uid, accession="RESEND-UP", seed=2)
    r = client.post(
        "/api/v1/studies",
        headers=rad,
        data={"task": "cxr"},
        files={"file": ("up2.dcm", later.read_bytes(), "application/dicom")},
    )
    assert r.status_code == 200, r.text
    assert storescu(port, later, options=("-xi",)).returncode == 0
    study = _one_study(client, rad, "RESEND-UP")
    assert study["identity_conflicts"] == [] and study["dicom"]["instances"] == 2


def test_a_series_uid_claimed_by_another_study_is_an_identity_conflict(site, tmp_path):
    from pydicom.uid import generate_uid

    from medai.platform.records.tables import Job

    app, client, rad, files = site
    series = generate_uid()
    a = make_dicom(
        files / "ser-a.dcm",
        "DX",
        study=generate_uid(),
        series=series,
        accession="SER-A",
        name=A["name"],
        patient_id=A["patient_id"],
    )
    b = make_dicom(  # another patient's new study claims A's series
        files / "ser-b.dcm",
        "DX",
        study=generate_uid(),
        series=series,
        accession="SER-B",
        name=B["name"],
        patient_id=B["patient_id"],
        seed=4,
    )
    c = make_dicom(  # the same patient's other study claims it too
        files / "ser-c.dcm",
        "DX",
        study=generate_uid(),
        series=series,
        accession="SER-C",
        name=A["name"],
        patient_id=A["patient_id"],
        seed=5,
    )
    port = app.state.dicom_node.port
    assert storescu(port, a).returncode == 0
    study = _one_study(client, rad, "SER-A")
    jobs_before = _count(app, Job)
    refused = storescu(port, b, options=("-d",))
    assert refused.returncode != 0 and "identity conflict" in refused.stdout + refused.stderr
    assert storescu(port, c).returncode != 0
    d = make_dicom(  # uploaded: held the same way
        tmp_path / "ser-d.dcm",
        "DX",
        study=generate_uid(),
        series=series,
        accession="SER-D",
        name=A["name"],
        patient_id=A["patient_id"],
        seed=6,
    )
    r = client.post(
        "/api/v1/studies",
        headers=rad,
        data={"task": "cxr"},
        files={"file": ("ser-d.dcm", d.read_bytes(), "application/dicom")},
    )
    assert r.status_code == 409 and r.json()["code"] == "identity_conflict", r.text
    assert "series (SeriesInstanceUID) belongs to study" in r.json()["detail"]
    assert _count(app, Job) == jobs_before  # nothing analysed
    for accession in ("SER-B", "SER-C", "SER-D"):  # no study was made for any
        assert (
            client.get("/api/v1/studies", headers=rad, params={"accession": accession}).json()[
                "total"
            ]
            == 0
        )
    rows = [c for c in _conflicts(client, rad)["items"] if c["study_id"] == study["id"]]
    assert len(rows) == 3 and {c["reason"] for c in rows} == {"series_elsewhere"}
    mine = [c for c in rows if c["incoming"]["patient_id"] == A["patient_id"]]
    (theirs,) = [c for c in rows if c["incoming"]["patient_id"] == B["patient_id"]]
    assert len(mine) == 2  # the same patient: only the series and its own order differ
    assert all(c["fields"] == ["SeriesInstanceUID", "AccessionNumber"] for c in mine)
    assert {"SeriesInstanceUID", "PatientID"} <= set(theirs["fields"])
    assert {c["source"] for c in rows} == {"dicom", "upload"}
    assert sorted(_study_of(client, rad, study["id"])["identity_conflicts"]) == sorted(
        c["id"] for c in rows
    )
    # held: nothing of the claimed study leaves while it is in doubt
    wait_status(client, rad, study["id"], {"ai_drafted"})
    r = client.get(f"/api/v1/studies/{study['id']}/report/fhir", headers=rad)
    assert r.status_code == 409 and r.json()["code"] == "identity_conflict"
    # resolved the same ways as any conflict
    for c in mine:
        r = client.post(f"/api/v1/conflicts/{c['id']}/reject", headers=rad)
        assert r.status_code == 200 and r.json()["state"] == "rejected"
    r = client.post(f"/api/v1/conflicts/{theirs['id']}/reassign", headers=rad)
    assert r.status_code == 200, r.text
    new = wait_status(client, rad, r.json()["resolved_study_id"], {"ai_drafted"})
    assert new["dicom"]["patient_id"] == B["patient_id"] and new["dicom"]["study_uid"] is None
    assert _study_of(client, rad, study["id"])["identity_conflicts"] == []
    assert client.get(f"/api/v1/studies/{study['id']}/report/fhir", headers=rad).status_code == 200


def test_a_study_refused_for_no_pixel_data_is_analysed_when_its_film_arrives(site):
    from pydicom.uid import generate_uid

    app, client, rad, files = site
    study_uid = generate_uid()
    header = make_dicom(
        files / "np-1.dcm", "DX", study=study_uid, accession="NOPIX-1", drop=("PixelData",)
    )
    film = make_dicom(files / "np-2.dcm", "DX", study=study_uid, accession="NOPIX-1", seed=2)
    port = app.state.dicom_node.port
    assert storescu(port, header).returncode == 0
    sid = _one_study(client, rad, "NOPIX-1")["id"]
    refused = wait_status(client, rad, sid, {"refused", "ai_drafted", "failed"})
    assert refused["status"] == "refused"
    assert refused["ai_result"]["reason_code"] == "no_image"
    assert storescu(port, film).returncode == 0
    done = wait_status(client, rad, sid, {"ai_drafted", "refused", "failed"})
    assert done["status"] == "ai_drafted", done["reason"]
    assert done["file"]["sha256"] != refused["file"]["sha256"]
    assert done["ai_result"]["refused"] is False and done["dicom"]["instances"] == 2


def test_a_header_only_first_instance_sent_with_its_film_in_one_association(site):
    from pydicom.uid import generate_uid

    app, client, rad, files = site
    study_uid = generate_uid()
    header = make_dicom(
        files / "np-3.dcm", "DX", study=study_uid, accession="NOPIX-2", drop=("PixelData",)
    )
    other = make_dicom(  # a second header-only one before the film
        files / "np-4.dcm", "DX", study=study_uid, accession="NOPIX-2", drop=("PixelData",)
    )
    film = make_dicom(files / "np-5.dcm", "DX", study=study_uid, accession="NOPIX-2", seed=3)
    assert storescu(app.state.dicom_node.port, header, other, film).returncode == 0
    sid = _one_study(client, rad, "NOPIX-2")["id"]
    done = wait_status(client, rad, sid, {"ai_drafted", "refused", "failed"})
    assert done["status"] == "ai_drafted", done["reason"]
    assert done["dicom"]["instances"] == 3


def test_a_transcoded_resend_through_the_node_keeps_no_second_file(
    tmp_path, tfidf_model_dir, tiny_imaging_dir
):
    """``receive.store`` (what C-STORE, STOW-RS and the pull call): the same instance in
    another transfer syntax is a duplicate, and its bytes are not kept beside the stored copy."""
    import hashlib
    import io

    import pydicom
    from pydicom.uid import ImplicitVRLittleEndian

    from medai.platform.intake import receive

    explicit = make_dicom(tmp_path / "e.dcm", "DX", accession="RESEND-STORE").read_bytes()
    ds = pydicom.dcmread(io.BytesIO(explicit))
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, implicit_vr=True, little_endian=True, enforce_file_format=True)
    implicit = out.getvalue()
    assert implicit != explicit
    with bare_platform("sqlite", tmp_path / "home", tfidf_model_dir, tiny_imaging_dir) as p:
        first = receive.store(p, explicit, "MODALITY")
        again = receive.store(p, implicit, "MODALITY")
        assert (again.outcome, again.study_id) == ("duplicate", first.study_id)
        assert not p.store.exists(hashlib.sha256(implicit).hexdigest())
        assert p.store.exists(hashlib.sha256(explicit).hexdigest())
