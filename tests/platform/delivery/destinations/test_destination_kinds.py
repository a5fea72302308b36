"""Destination kinds are found in one registry (``platform.delivery.destinations``): an
unknown kind names the valid ones, each registered kind satisfies the ``Destination``
protocol and has the config model its name discriminates, every code a row may end with is
one of ``core.errors.CODES`` with words on the admin page, and the delivery loop builds,
sends and retries through whatever kind the registry holds (a kind registered here, which no
code names)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Literal, get_args

import pytest
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

import medai
from helpers.platform import bare_platform, png_bytes
from medai.core.errors import CODES
from medai.destinations_config import DESTINATION_KINDS
from medai.platform.delivery import outbox
from medai.platform.delivery.delivery import DeliveryLoop
from medai.platform.delivery.destinations import (
    Destination,
    DestinationRejected,
    DestinationUnavailable,
    UnknownDestinationKind,
    get,
    kinds,
    register,
)
from medai.platform.delivery.destinations.registry import DestinationKind, unregister
from medai.platform.dicom.arrival import Arrival
from medai.platform.records.db import utcnow
from medai.platform.records.tables import OutboxItem, ReportVersion, User
from medai.platform.worklist import filing

MESSAGES = Path(medai.__file__).parent / "platform" / "web" / "messages.json"


def test_an_unknown_kind_names_the_valid_ones():
    with pytest.raises(UnknownDestinationKind, match=r"'ftp'; valid: dicom, dicomweb, fhir, hl7"):
        get("ftp")


def test_each_config_kind_has_one_registered_kind_satisfying_the_protocol():
    assert kinds() == sorted(DESTINATION_KINDS) == ["dicom", "dicomweb", "fhir", "hl7"]
    for name in kinds():
        kind = get(name)
        assert isinstance(kind, Destination), name
        assert get_args(kind.config.model_fields["kind"].annotation) == (name,), name
        assert isinstance(kind.needs_dicom_identity, bool)
        assert isinstance(kind.replaced_by_later, bool)
        for method in ("build", "send", "retryable"):
            assert callable(getattr(kind, method)), (name, method)
    # the facts a kind knows, which callers once told apart by its name
    assert [n for n in kinds() if get(n).needs_dicom_identity] == ["dicom", "dicomweb"]
    assert [n for n in kinds() if get(n).replaced_by_later] == ["fhir", "hl7"]


def test_every_code_a_row_may_hold_is_in_the_one_vocabulary_with_words_for_the_admin():
    codes = {c for name in kinds() for c in get(name).codes}
    codes |= {"retracted", "identity_conflict", *outbox.OLD_CODES.values()}
    assert codes <= set(CODES), codes - set(CODES)
    assert not set(outbox.OLD_CODES) & codes  # an old name is no code of a row any more
    words = json.loads(MESSAGES.read_text(encoding="utf-8"))
    for lang, table in words.items():
        missing = sorted(c for c in codes if f"outbox_code_{c}" not in table)
        assert not missing, (lang, missing)


# --- the loop dispatches through the registry -------------------------------------------------


class Config(BaseModel):
    """A destination of the kind registered below, as ``destinations_config`` models one."""

    model_config = ConfigDict(frozen=True)
    name: str = "rec"
    kind: Literal["recording"] = "recording"
    events: tuple[str, ...] = ("signed",)
    timeout_s: float = 1.0

    @property
    def where(self) -> str:
        return "here"


class Recording(DestinationKind):
    """A kind no module of medai knows: what it built and sent is kept."""

    kind = "recording"
    config = Config

    def __init__(self, fail: Exception | None = None, retries: bool = True) -> None:
        self.fail, self.retries = fail, retries
        self.built: list[tuple[int, int, bool]] = []
        self.sent: list[str] = []

    def build(self, p, item, parts, dest, *, correction: bool) -> str:
        self.built.append((item.report_version, parts.report["version"], correction))
        return f"v{item.report_version} to {dest.name}"

    def send(self, payload: Any, dest: Any) -> int:
        if self.fail is not None:
            raise self.fail
        self.sent.append(payload)
        return 1

    def retryable(self, error: Exception) -> bool:
        return self.retries and super().retryable(error)


@pytest.fixture
def plat(tmp_path, tfidf_model_dir, tiny_imaging_dir):
    with bare_platform("sqlite", tmp_path, tfidf_model_dir, tiny_imaging_dir) as p:
        yield p


@pytest.fixture
def recording():
    def use(**options) -> Recording:
        return register(Recording(**options))  # type: ignore[return-value]

    yield use
    unregister("recording")


def signed_study(p, dests) -> int:
    """A PNG study (no DICOM identity) with a signed version, enqueued as ``signed``."""
    with p.db.session() as db:
        user = db.scalar(select(User))
        sha = p.store.put_bytes(png_bytes(3))
        s, _ = filing.create(
            db, Arrival(sha=sha, size=1, content_type="image/png", task="cxr", uploaded_by=user.id)
        )
        row = ReportVersion(
            study_id=s.id,
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
        outbox.on_signed(db, s, row, destinations=dests)
        return s.id


def rows(p, sid: int) -> list[OutboxItem]:
    with p.db.reader() as db:
        return list(db.scalars(select(OutboxItem).where(OutboxItem.study_id == sid)))


def loop(p, dest) -> DeliveryLoop:
    return DeliveryLoop(p, destinations=[dest], rng=random.Random(1), clock=utcnow)


def test_the_loop_builds_and_sends_with_the_kind_the_registry_holds(plat, recording):
    kind, dest = recording(), Config()
    assert isinstance(kind, Destination) and get("recording") is kind
    sid = signed_study(plat, [dest])
    assert loop(plat, dest).run_once() == {"delivered": 1}
    assert kind.built == [(1, 1, False)] and kind.sent == ["v1 to rec"]
    (row,) = rows(plat, sid)
    assert (row.kind, row.state, row.sent) == ("recording", "delivered", 1)


def test_a_kind_that_needs_a_dicom_identity_gets_no_row_to_send_for_a_png(plat, recording):
    kind, dest = recording(), Config()
    kind.needs_dicom_identity = True
    sid = signed_study(plat, [dest])
    (row,) = rows(plat, sid)
    assert (row.state, row.code) == ("skipped", "no_dicom_identity")
    assert loop(plat, dest).run_once() == {} and kind.built == []


@pytest.mark.parametrize(
    ("fail", "retries", "outcome", "code", "reason"),
    [
        (
            DestinationUnavailable("here", "down"),
            True,
            "retrying",
            "destination_unavailable",
            "down",
        ),
        (
            DestinationRejected("here", "HTTP 400"),
            True,
            "failed",
            "destination_rejected",
            "HTTP 400",
        ),
        (ValueError("Ayşe"), True, "failed", "cannot_build", "ValueError"),
        (RuntimeError("Ayşe"), True, "retrying", "delivery_error", "RuntimeError"),
        (
            DestinationUnavailable("here", "down"),
            False,
            "failed",
            "destination_unavailable",
            "down",
        ),
    ],
)
def test_the_kind_says_what_is_retried_and_the_row_code_is_of_the_vocabulary(
    plat, recording, fail, retries, outcome, code, reason
):
    recording(fail=fail, retries=retries)
    dest = Config()
    sid = signed_study(plat, [dest])
    assert loop(plat, dest).run_once() == {outcome: 1}
    (row,) = rows(plat, sid)
    assert (row.code, row.reason) == (code, reason)
    with plat.db.reader() as db:
        shown = outbox.as_dict(db.get(OutboxItem, row.id))
    assert (shown["state"], shown["code"]) == (outcome, code)


def test_codes_of_rows_written_before_are_read_as_the_codes_they_became(plat, recording):
    recording()
    dest = Config()
    sid = signed_study(plat, [dest])
    (row,) = rows(plat, sid)
    for old, new in outbox.OLD_CODES.items():
        with plat.db.session() as db:  # as an earlier release wrote it: no migration
            item = db.get(OutboxItem, row.id)
            item.state, item.code, item.reason = "failed", old, "r"
        with plat.db.reader() as db:
            assert outbox.as_dict(db.get(OutboxItem, row.id))["code"] == new
            (summary,) = outbox.summary(db, [dest])
            assert summary["last_problem"]["code"] == new


def test_a_code_outside_the_vocabulary_never_reaches_a_row(plat, recording):
    recording()
    dest = Config()
    signed_study(plat, [dest])
    now = utcnow()
    with plat.db.session() as db:
        item = outbox.claim(db, "w", now, 60)
        with pytest.raises(ValueError, match=r"not in medai\.core\.errors\.CODES"):
            outbox.mark_final(db, item.id, "w", now, "failed", "rejected", "HTTP 400")
