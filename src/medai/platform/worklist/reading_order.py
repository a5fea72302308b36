"""The worklist's reading order and what its AI column says: one rule, in one place.

A study is read in this order (``rank``), done by the database so that paging is right:

1. ``ai_urgent``: the AI found a **new urgent finding** and the study is not signed. An urgent
   finding is a label the study's task marks urgent (``Task.urgent``: a chest film's
   pneumothorax, a brain MRI's glioma) that the AI decided present, or left among the
   candidates of an undecided or conflicting result (a possible pneumothorax is read first
   too: the model's doubt never hides it). ``urgent_labels`` is that rule. It is **known**
   (``known``, "bilinen") when the patient's latest signed prior of the same task
   (``patient_context.comparison_prior``, the one the draft compares with) has its signer's
   decision present for it, the comparison finding it on both: a glioma reported and signed
   last month ranks below a new pneumothorax and a red flag, in ``rest``, labelled known. A
   finding the prior did not have, or one a signer decided absent, is new and ranks first.
   (Growth is told by sizes, which only the radiologist's measurements give, after reading.)
2. ``red_flag``: the clinical question raised a red flag (triage's red-flag rules, the rule
   named: ``question_flags``), or the HL7 order came marked STAT (``ORDER_STAT``, the
   ``order_stat`` column), and the study is not signed. A separate reason, never the whole
   ranking: "nefes darlığı" on a chest film's request is a red flag of the request, not a
   finding on the film.
3. ``rest``: everything else.

Within each, oldest first (first come, first read). A signed study (final, amended) or a
retracted one is in ``rest``: its urgency was read.

The AI column's state (``ai_state``, what the filters ask for) reads the stored result's
decision (``services.imaging.decision_of``, the one the study page reads) and never re-derives
it from probabilities:

- ``conflict``: the AI contradicts itself (the decision's ``conflict``: the normal label and a
  finding both passed — the study page's conflict note), or its newest reading of the study
  (instances arrived late) decided other findings than the reading before it, or an instance
  naming another patient or order is held as an open identity conflict (read from
  ``identity_conflicts`` at query time, so it is never stale). A conflict wins over undecided;
- ``undecided``: the decision is indeterminate (the study page's "could not decide" note);
- ``decided``: a decision (a finding, or none of its findings);
- ``refused``: the AI refused the image;
- None: no AI result yet (pending, failed, or no model).

``out_of_scope`` (issue 58's scope flag: the image is unlike the model's training films) is a
separate flag beside any state.

The columns (``studies.ai_state``, ``ai_urgent``, ``red_flag``, ``out_of_scope``; migration
0023) are written by ``refresh`` where a result is stored (``analysis``), and a question's red
flag where the study is filed (``filing.create``). They hold codes and booleans only: the
finding's label, its probability and the red-flag rule's name stay sealed (the stored result,
``studies.urgent_because``) and are read for the rows of one page (``summary``).
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import and_, case, exists, or_, select
from sqlalchemy.orm import Session

from medai.core.task_registry import TaskError
from medai.core.task_registry import get as get_task
from medai.platform.records.crypto import InvalidToken
from medai.platform.records.tables import AIResultRow, IdentityConflict, Study
from medai.services.imaging import decision_of, scope_of

AI_STATES = ("decided", "undecided", "conflict", "refused")
# the worklist's AI filter: the urgent finding, each state a reader asks for, no result yet
AI_FILTERS = ("urgent", "undecided", "conflict", "out_of_scope", "none")
RANKS = ("ai_urgent", "red_flag", "rest")
SIGNED = ("final", "amended", "entered_in_error")  # read: no longer ranked by urgency
RED_FLAG = "question_red_flag"
# the order came marked STAT (HL7 table 0027 "S", ``intake.orders``): ranked with a red flag
ORDER_STAT = "order_stat"
# an urgent finding already present on the patient's signed prior (kept, sealed, in
# ``studies.urgent_because`` beside the AI's urgency reasons)
KNOWN = "ai_known_finding"


def urgent_labels(task: str, decision: dict | None) -> list[tuple[str, str]]:
    """The rule of an urgent finding: the task's urgent labels the decision did not rule
    out, with their state (present, or indeterminate: among the undecided candidates)."""
    try:
        urgent = set(get_task(task).urgent)
    except TaskError:
        return []
    return [
        (r["label"], r["state"])
        for r in (decision or {}).get("labels") or []
        if r["label"] in urgent and r["state"] in ("present", "indeterminate")
    ]


def _decision(payload: dict | None) -> dict | None:

    return decision_of(payload) if payload and payload.get("task") else None


def _out_of_scope(payload: dict | None) -> dict | None:
    """The result's out-of-scope flag (None: in scope, or not checked)."""

    oos = ((scope_of(payload) if payload else None) or {}).get("out_of_scope") or {}
    return oos if oos.get("flagged") else None


def _read_alike(a: dict | None, b: dict | None) -> bool:
    """Whether two readings' decisions say the same (state and decided findings)."""
    if a is None or b is None:
        return True  # a refusal or no result: nothing to disagree with
    return (a.get("state"), sorted(a.get("positives") or [])) == (
        b.get("state"),
        sorted(b.get("positives") or []),
    )


def columns(task: str, payload: dict | None, earlier: dict | None = None) -> dict[str, Any]:
    """The worklist columns of the newest stored imaging result ``payload`` (``earlier``: the
    result of the reading before it, if any): ``ai_state``, ``ai_urgent``, ``out_of_scope``."""
    if payload is None:
        return {"ai_state": None, "ai_urgent": False, "out_of_scope": False}
    oos = _out_of_scope(payload) is not None
    if payload.get("refused"):
        return {"ai_state": "refused", "ai_urgent": False, "out_of_scope": oos}
    decision = _decision(payload)
    if decision is None:
        return {"ai_state": None, "ai_urgent": False, "out_of_scope": oos}
    if decision.get("conflict") or not _read_alike(decision, _decision(earlier)):
        state = "conflict"
    elif decision.get("state") == "indeterminate":
        state = "undecided"
    else:
        state = "decided"
    return {
        "ai_state": state,
        "ai_urgent": bool(urgent_labels(task, decision)),
        "out_of_scope": oos,
    }


def _readings(db: Session, study_ids: list[int]) -> dict[int, list[int]]:
    """Each study's newest imaging result and the newest of another reading (ids, newest
    first), read without opening any payload."""
    chosen: dict[int, list[int]] = {sid: [] for sid in study_ids}
    if not study_ids:
        return chosen
    readings: dict[int, str] = {}
    for rid, sid, reading in db.execute(
        select(AIResultRow.id, AIResultRow.study_id, AIResultRow.reading)
        .where(AIResultRow.study_id.in_(study_ids), AIResultRow.kind == "imaging")
        .order_by(AIResultRow.id.desc())
    ):
        have = chosen[sid]
        if len(have) < 2 and (not have or reading != readings[have[0]]):
            have.append(rid)
            readings[rid] = reading
    return chosen


def known_labels(urgent: list[tuple[str, str]], prior: dict[str, Any] | None) -> list[str]:
    """The urgent labels the patient's signed prior already holds present (its signer's
    decisions: ``patient_context.comparison_prior``); none without a prior, or one whose
    signature recorded no label decisions."""
    if not prior or not prior.get("recorded"):
        return []
    before = set(prior.get("present") or [])
    return [lab for lab, _state in urgent if lab in before]


def refresh(db: Session, study: Study) -> None:
    """Write the study's worklist columns from its stored results and urgency reasons; an
    urgent finding every label of which the signed prior already holds is known, not new
    (``known_labels``): it does not rank the study first."""
    from medai.platform.worklist.patient_context import comparison_prior

    ids = _readings(db, [study.id])[study.id]
    payloads = _payloads(db, ids)
    newest = payloads.get(ids[0]) if ids else None
    earlier = payloads.get(ids[1]) if len(ids) > 1 else None
    cols = columns(study.task, newest, earlier)
    urgent = urgent_labels(study.task, _decision(newest)) if cols["ai_urgent"] else []
    known = known_labels(urgent, comparison_prior(db, study)) if urgent else []
    if urgent and len(known) == len(urgent):
        cols["ai_urgent"] = False
    for key, value in cols.items():
        setattr(study, key, value)
    reasons = [r for r in study.urgent_because or [] if not _is_known(r)]
    reasons += [{"code": KNOWN, "label": lab} for lab in known]
    if reasons != list(study.urgent_because or []):
        study.urgent_because = reasons or None
    study.red_flag = any(r.get("code") == RED_FLAG for r in study.urgent_because or [])
    study.order_stat = any(r.get("code") == ORDER_STAT for r in study.urgent_because or [])


def refresh_patient(db: Session, study: Study) -> int:
    """Write again the reading rank of the patient's other unsigned studies of ``study``'s
    task, after its signature, amendment or retraction changed what their comparison prior
    records: a finding a signed prior holds is known for the later studies, and one it no
    longer holds is new again. Returns how many were written."""
    from medai.platform.documents.words.report_words import SIGNED
    from medai.platform.worklist.patient_context import same_patient

    others = [s for s in same_patient(db, study) if s.task == study.task and s.status not in SIGNED]
    for other in others:
        refresh(db, other)
    return len(others)


def _is_known(reason: Any) -> bool:
    return isinstance(reason, dict) and reason.get("code") == KNOWN


def question_flags(flags: list[Any]) -> list[dict[str, Any]]:
    """The urgency reasons of a clinical question's fired red flags (triage's ``FiredFlag``:
    the rule's id and its names, never the text that matched); one reason without a rule when
    the flag's rule is not known."""
    out = [
        {"code": RED_FLAG, "rule": f.id, "name_tr": f.name_tr, "name_en": f.name_en}
        for f in flags
        if getattr(f, "id", None)
    ]
    return out or [{"code": RED_FLAG}]


# --- the query: ranked and filtered by the database

_to_read = Study.status.not_in(SIGNED)
_identity_conflict = exists().where(
    IdentityConflict.study_id == Study.id, IdentityConflict.state == "open"
)


def rank():
    """0: an urgent AI finding, 1: a red flag in the question, 2: the rest (see the module)."""
    return case(
        (and_(Study.ai_urgent.is_(True), _to_read), 0),
        (and_(or_(Study.red_flag.is_(True), Study.order_stat.is_(True)), _to_read), 1),
        else_=2,
    )


def order(q):
    return q.order_by(rank(), Study.created_at, Study.id)


def where_ai(q, ai: str):
    """``q`` narrowed to one AI filter (``AI_FILTERS``)."""
    if ai == "urgent":
        return q.where(Study.ai_urgent.is_(True))
    if ai == "undecided":  # a conflict is listed as one (it wins over undecided)
        return q.where(Study.ai_state == "undecided", ~_identity_conflict)
    if ai == "conflict":
        return q.where(or_(Study.ai_state == "conflict", _identity_conflict))
    if ai == "out_of_scope":
        return q.where(Study.out_of_scope.is_(True))
    if ai == "none":
        return q.where(Study.ai_state.is_(None), ~_identity_conflict)
    raise ValueError(f"unknown AI filter {ai!r}; valid: {', '.join(AI_FILTERS)}")


# --- what one page's rows say


def summary(
    study: Study, payload: dict | None, earlier: dict | None, open_conflicts: list[int]
) -> dict[str, Any]:
    """A worklist row's reading: its ``rank`` and each reason apart — ``ai`` (the AI column:
    state, primary finding and its probability, candidates, conflict, urgent labels,
    out-of-scope) and ``request`` (the question's red flag and the rules that fired)."""
    decision = _decision(payload)
    cols = columns(study.task, payload, earlier)
    state = cols["ai_state"]
    kinds = []
    if decision and decision.get("conflict"):
        kinds.append("self")
    if decision and not _read_alike(decision, _decision(earlier)):
        kinds.append("reading")
    if open_conflicts:
        kinds.append("identity")
    if kinds:
        shown = "conflict"
    elif state is None or study.status in ("received", "analysing"):
        # a result stored before its draft (the job still running) is not yet the AI's word
        shown = "pending" if study.status in ("received", "analysing") else "none"
    elif state == "decided":
        # a decided state comes with its decision
        shown = "normal" if cast(dict, decision).get("state") in ("normal", "none") else "finding"
    else:
        shown = state
    probs = {r["label"]: r.get("probability") for r in (decision or {}).get("labels") or []}
    primary = (decision or {}).get("primary") if shown in ("finding", "conflict") else None
    stated = [lab for lab in (decision or {}).get("stated") or [] if lab != primary]
    oos = _out_of_scope(payload)
    reasons = [
        r for r in study.urgent_because or [] if isinstance(r, dict) and r.get("code") == RED_FLAG
    ]
    rules = [
        {"id": r["rule"], "name_tr": r.get("name_tr"), "name_en": r.get("name_en")}
        for r in reasons
        if r.get("rule")
    ]
    to_read = study.status not in SIGNED
    urgent = urgent_labels(study.task, decision)
    known = {r.get("label") for r in study.urgent_because or [] if _is_known(r)}
    new = [lab for lab, _state in urgent if lab not in known]
    red_flag = bool(reasons)
    stat = any(
        isinstance(r, dict) and r.get("code") == ORDER_STAT for r in study.urgent_because or []
    )
    return {
        "rank": "ai_urgent"
        if new and to_read
        else ("red_flag" if (red_flag or stat) and to_read else "rest"),
        # urgent findings the signed prior already holds: "bilinen" (known), ranked in rest
        "known": [lab for lab, _state in urgent if lab in known],
        "ai": {
            "state": shown,
            "primary": primary,
            "probability": probs.get(primary) if primary else None,
            "others": stated,
            "low_confidence": bool((decision or {}).get("low_confidence")),
            "candidates": list((decision or {}).get("candidates") or [])
            if (decision or {}).get("state") == "indeterminate"
            else [],
            "conflict": kinds,
            "conflict_labels": list((decision or {}).get("conflict") or []),
            "urgent": [
                {"label": lab, "state": st, "probability": probs.get(lab)} for lab, st in urgent
            ],
            "out_of_scope": oos is not None,
            "out_of_scope_reason": (oos or {}).get("reason"),
            "refusal": (payload or {}).get("reason_code") if state == "refused" else None,
        },
        "request": {"red_flag": red_flag, "rules": rules, "stat": stat},
    }


def summaries(
    db: Session, rows: list[Study], open_conflicts: dict[int, list[int]]
) -> dict[int, dict[str, Any]]:
    """``summary`` of each study of one page (its results read in one query). A result sealed
    under a key no longer configured reads as no result: its row still lists (the study page
    answers the named 503 ``record_undecryptable``), never a worklist that fails whole."""
    chosen = _readings(db, [s.id for s in rows])
    payloads = _payloads(db, [rid for have in chosen.values() for rid in have])
    out = {}
    for s in rows:
        have = [payloads.get(rid) for rid in chosen[s.id]]
        out[s.id] = summary(
            s,
            have[0] if have else None,
            have[1] if len(have) > 1 else None,
            open_conflicts.get(s.id, []),
        )
    return out


def _payloads(db: Session, ids: list[int]) -> dict[int, dict | None]:
    """The stored payloads of these results; one that no configured key opens is None."""
    if not ids:
        return {}
    query = select(AIResultRow.id, AIResultRow.payload)
    try:
        return dict(db.execute(query.where(AIResultRow.id.in_(ids))).all())
    except InvalidToken:  # one of them is unreadable: read them one by one
        out: dict[int, dict | None] = {}
        for rid in ids:
            try:
                out[rid] = db.execute(query.where(AIResultRow.id == rid)).one()[1]
            except InvalidToken:
                out[rid] = None
        return out
