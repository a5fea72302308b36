"""Sign-off, one use case: a radiologist signs a study's report, and everything a signature means
happens here, whichever face asks (the API's ``POST /studies/{id}/report/sign``, a script, a
test).

In one transaction: the signer's label choices are checked against the task; the version is
signed (``review.sign``: an unsaved edit on the signer's screen becomes the signed text, the
outbox gets the signed version); the labels are stored (``lifecycle.labels``: the signer's
clicks and the AI's findings they endorse); the edit and the signature are audited; and the
reading rank of the patient's other unsigned studies is written again, because a finding this
signature records present is now *known* for them (``reading_order``: a known unchanged
finding ranks below a new red flag, and one the signer did not record is new again). A
conflict (a stale version, a signed or retracted study) is audited in its own transaction and
raised. After the commit, the model's agreement with the signer is checked
(``monitoring.after_signature``, never raises)."""

from __future__ import annotations

from typing import Any

from medai.platform.access import audit
from medai.platform.context import Platform
from medai.platform.lifecycle import labels, monitoring
from medai.platform.reading import review
from medai.platform.records.tables import User
from medai.platform.worklist import reading_order, study_state, versions


def sign_off(
    p: Platform,
    study_id: int,
    user: User,
    actor: audit.Actor,
    version: int,
    sections: dict[str, Any] | None = None,
    choices: dict[str, bool] | None = None,
) -> dict[str, Any]:
    """Sign version ``version`` of the study's report as ``user`` (see the module); the signed
    version as ``versions.as_dict`` says it. ``sections``: the text on the signer's screen;
    ``choices``: the signer's label clicks ({label: present})."""
    destinations = p.settings.destinations()
    try:
        with p.db.session() as db:
            study = study_state.get(db, study_id)
            learnable = labels.task_of(study)  # None: a study no model reads keeps no labels
            checked = labels.check_choices(learnable, choices) if learnable else None
            before = versions.current(db, study.id)
            row = review.sign(
                db, study, version, user, sections, checked, destinations=destinations
            )
            if learnable is not None:
                labels.record(db, study, row, checked, user)  # the site's labels, this version
            if versions.text_changed(before, row):  # the screen's unsaved edit, signed as it stood
                audit.record(
                    db,
                    actor,
                    "edit",
                    "report",
                    study_id,
                    version=row.version,
                    status=row.status,
                    with_signature=True,
                )
            audit.record(
                db, actor, "sign", "report", study_id, version=row.version, status=row.status
            )
            reading_order.refresh_patient(db, study)  # what is known for the later studies
            out = versions.as_dict(db, row)
    except (review.Conflict, study_state.StudyRetracted):  # 409, audited
        with p.db.session() as db:
            audit.record(db, actor, "sign", "report", study_id, outcome="conflict", version=version)
        raise
    monitoring.after_signature(p, study_id)  # agreement with the AI
    return out
