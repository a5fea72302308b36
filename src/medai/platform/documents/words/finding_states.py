"""Each finding's one state, as every output reads it: the AI's and, once signed, the signer's.

The AI's state comes from the stored result's decision (``services.imaging.decision_of``:
present, absent or indeterminate, with why) and is never re-derived from probabilities here or
downstream. A signed report version adds what its signer said of each label (``study_labels``
of *that* version, ``lifecycle.labels``) and the verdict on the AI's suggestion:

- ``confirmed``: the signer agrees with the AI (present and present, absent and absent);
- ``rejected``: the AI said present, the signer absent;
- ``added``: the AI said absent (or did not read the label), the signer present;
- ``decided``: the AI was undecided and the signer chose (``signer`` says which way);
- ``not_decided``: the AI was undecided and the signature that stored labels did not choose
  for this one (no click: it reads "karar verilmedi" / "not decided", never "rejected").

After sign-off the signer's labels rule: FHIR, the report SR, HL7 and the PDF state
``signer``; the AI's ``state`` stays visible as a suggestion beside it. A version whose
signature stored no labels (an undecided study signed "not assessable") keeps the AI's
suggestions only, never a signer's word it lacks.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from medai.platform.records.tables import StudyLabel
from medai.services.imaging import decision_of, scope_of

VERDICTS = ("confirmed", "rejected", "added", "decided", "not_decided")
SUMMARY = (
    "state",
    "primary",
    "indeterminate_reason",
    "candidates",
    "conflict",
    "low_confidence",
    "stated",
    "positives",
)


def verdict(ai_state: str | None, signer: bool | None) -> str | None:
    """The signer's verdict on the AI's state of one label (None: nothing signed)."""
    if signer is None:
        return None
    if ai_state == "indeterminate":
        return "decided"
    if ai_state is None:
        return "added" if signer else None
    return (
        "confirmed"
        if (ai_state == "present") == signer
        else ("rejected" if ai_state == "present" else "added")
    )


def rows(
    decision: dict[str, Any] | None, signed: list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """One row per label: the AI's (label, probability, threshold, state, basis, implied_by,
    fragile) and the signer's (``signer`` present/absent/None, ``source`` of the click,
    ``verdict``); labels only the signer named come last, with no AI state."""
    said = {s["label"]: s for s in signed or [] if isinstance(s, dict) and s.get("label")}
    out = []
    for lab in (decision or {}).get("labels") or []:
        s = said.pop(lab["label"], None)
        signer = None if s is None else bool(s["present"])
        verdict_ = verdict(lab["state"], signer)
        if signed and lab["state"] == "indeterminate":
            # an undecided label the signer did not choose: stored with no click (labels read
            # from the text before labels changed only by hand) or not stored at all
            unchosen = s is None or (s.get("source") == "text" and not signer)
            if unchosen:
                signer, verdict_ = None, "not_decided"
        out.append(
            {
                "label": lab["label"],
                "probability": lab.get("probability"),
                "threshold": lab.get("threshold"),
                "state": lab["state"],
                "positive": lab["state"] == "present",
                "basis": lab.get("basis"),
                "implied_by": lab.get("implied_by"),
                "fragile": bool(lab.get("fragile")),
                "signer": signer,
                "source": None if s is None else s.get("source"),
                "verdict": verdict_,
            }
        )
    for label, s in said.items():
        out.append(
            {
                "label": label,
                "probability": None,
                "threshold": None,
                "state": None,
                "positive": False,
                "basis": None,
                "implied_by": None,
                "fragile": False,
                "signer": bool(s["present"]),
                "source": s.get("source"),
                "verdict": verdict(None, bool(s["present"])),
            }
        )
    return out


def summary(decision: dict[str, Any] | None) -> dict[str, Any] | None:
    """The decision's overall answer (state, candidates, conflict, …) without its rows."""
    return None if decision is None else {k: decision.get(k) for k in SUMMARY}


def with_states(
    report: dict[str, Any], ai_payload: dict[str, Any] | None, signed: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """The report dict every output builds from: ``findings`` are ``rows`` (the AI's states
    from ``ai_payload``, the signer's from ``signed``, the labels of this version's
    signature), ``decision`` the AI's overall answer, ``signed_labels`` whether the signer's
    labels rule, ``scope`` what the model detects and cannot and whether the image was out of
    its scope (``services.imaging.scope_of``; None without a stored AI result). A report with
    no stored AI result reads its own stored findings (label, probability, threshold,
    positive) through the same reader."""

    payload = ai_payload
    if payload is None and report.get("findings"):
        payload = {"task": report.get("task"), "findings": report["findings"]}
    decision = decision_of(payload) if payload else None
    signed = signed if report.get("signed_by") else None
    return {
        **report,
        "findings": rows(decision, signed),
        "decision": summary(decision),
        "signed_labels": bool(signed),
        "scope": scope_of(ai_payload) if ai_payload else None,
    }


def signer_rules(report: dict[str, Any]) -> bool:
    """Whether the report's signer stated labels (then they, not the AI, are the result)."""
    return bool(report.get("signed_labels"))


def version_labels(db: Session, study_id: int, version: int) -> list[dict[str, Any]]:
    """The labels the signature of one report version stored (none: it stored none)."""
    rows = db.scalars(
        select(StudyLabel)
        .where(StudyLabel.study_id == study_id, StudyLabel.report_version == version)
        .order_by(StudyLabel.id)
    )
    return [
        {"label": r.label, "ai_positive": r.ai_positive, "present": r.present, "source": r.source}
        for r in rows
    ]


def of_version(db, report: dict[str, Any], ai_payload: dict[str, Any] | None) -> dict[str, Any]:
    """``with_states`` with the labels the signature of ``report``'s own version stored (an
    amendment's, not the first signature's)."""
    signed = (
        version_labels(db, report["study_id"], report["version"])
        if report.get("signed_by")
        else None
    )
    return with_states(report, ai_payload, signed)


def decided_positives(payload: dict) -> list[str]:
    """The stored result's decided findings (its decision; rows of results stored before
    decisions existed fall back to their ``positive`` flags)."""
    decision = payload.get("decision")
    if decision:
        return list(decision.get("positives") or [])
    return [f["label"] for f in payload.get("findings", []) if f.get("positive")]
