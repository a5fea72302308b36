"""Site validation before promotion: a candidate is evaluated beside the active model on the
task's latest site set (``site_sets``) — per label AUROC with a bootstrap interval, and
sensitivity and PPV at each model's served operating point with Wilson intervals, overall and
per subgroup (source, modality, view; device manufacturer, age band and sex where the DICOM
header says) — and is **non-inferior** when the 95 % lower bound of the paired
bootstrap difference (candidate − active) of macro AUROC and of macro sensitivity is at least
−margin (``MEDAI_VALIDATION_MARGIN``). Studies the candidate was trained on (its card's site
signatures) are left out. Promotion without an override needs a passing validation of the
candidate against the model active now on the newest site set.

A validation has one of three outcomes (``metrics["outcome"]``): ``passed``,
``not_non_inferior``, or ``inconclusive`` — on fewer than ``MIN_STUDIES`` studies (where
intervals degenerate: "0.0 to 0.0" on a handful of studies), on a set where no label has both
positive and negative studies, or when an interval is undefined (most resamples could not
compute it). A zero-width interval on enough studies is said in the summary, never silently
passed over. An inconclusive validation never passes: its
``metrics["inconclusive"]`` names the reason, the number of studies and the minimum, and a
promotion without an override is refused with ``validation_inconclusive``. A missing or
empty site set is the set's problem, said as such (``no_site_set``, ``empty_site_set``), never
a verdict on the candidate."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from medai.core import model_dir as model_dirs
from medai.core.metrics import auroc_with_ci
from medai.platform.access import audit
from medai.platform.lifecycle import drift, model_registry, site_sets
from medai.platform.lifecycle.model_registry import (
    MOVES,
    EmptySiteSet,
    LifecycleError,
    MoveRefused,
    PromotionRefused,
    activate,
    active,
    get,
    reason_of,
    require_served,
)
from medai.platform.lifecycle.monitoring import REFERENCE_FIELDS, sample_of
from medai.platform.records.localtime import iso_utc
from medai.platform.records.tables import RegisteredModel, SiteSet, Study, Validation
from medai.services import imaging as imaging_service
from medai.services.imaging import header_population

MIN_SUBGROUP = 10
MIN_STUDIES = 30
"""The fewest site-set studies (after leaving out those the candidate was trained on) a
verdict is given on. Below it a paired bootstrap of a macro AUROC or sensitivity difference is
too unstable to support non-inferiority — on a handful of studies it collapses to intervals
such as "0.0 to 0.0" — so the validation is ``inconclusive``. A floor, not a power
calculation: a site wanting a tighter bound needs many more studies."""
INCONCLUSIVE_REASONS = ("too_few_studies", "no_positives", "undefined_interval")
log = logging.getLogger("medai.platform.lifecycle")


@dataclass(frozen=True)
class Verdict:
    passed: bool
    message: str
    code: str = "not_validated"


def outcome_of(v: Validation) -> str:
    """``passed``, ``not_non_inferior`` or ``inconclusive`` (rows from before the outcome was
    kept: from ``passed``)."""
    return (v.metrics or {}).get("outcome") or ("passed" if v.passed else "not_non_inferior")


def inconclusive_text(detail: dict[str, Any]) -> str:
    """Why a validation is inconclusive, naming the sample size and the minimum."""
    n, minimum = detail.get("studies"), detail.get("minimum", MIN_STUDIES)
    reason = detail.get("reason")
    if reason == "too_few_studies":
        why = f"only {n} studies were evaluated, and a verdict needs at least {minimum}"
    elif reason == "no_positives":
        why = (
            f"no label has both positive and negative studies among the {n} evaluated, so "
            "no AUROC or sensitivity can be estimated"
        )
    else:
        why = (
            f"the 95% interval of a difference is undefined on these {n} studies (most "
            f"resamples had no positive or no negative study; at least {minimum} studies, "
            "with positives and negatives of the labels judged, are needed)"
        )
    return f"inconclusive: {why}"


def verdict(db: Session, candidate: RegisteredModel) -> Verdict:
    """Whether ``candidate`` may be promoted without an override."""
    site = site_sets.latest(db, candidate.task)
    if site is None:
        return Verdict(
            False,
            f"no site evaluation set for the {candidate.task} task yet (build "
            f"one from signed studies: medai models site-set --task "
            f"{candidate.task}), so the candidate cannot be shown "
            "non-inferior to the active model",
            "no_site_set",
        )
    if not site.studies:
        return Verdict(False, _empty_message(site, candidate.id), "empty_site_set")
    current = active(db, candidate.task)
    done = db.scalar(
        select(Validation)
        .where(
            Validation.model_id == candidate.id,
            Validation.site_set_id == site.id,
            Validation.active_model_id == (current.id if current else None),
        )
        .order_by(Validation.id.desc())
        .limit(1)
    )
    if done is None:
        return Verdict(
            False,
            f"model {candidate.id} has not been validated against the active "
            f"model on site set v{site.version} (medai models validate "
            f"{candidate.id})",
        )
    if outcome_of(done) == "inconclusive":
        return Verdict(
            False,
            f"the validation of model {candidate.id} on site set "
            f"v{site.version} was "
            f"{inconclusive_text(done.metrics.get('inconclusive') or {})}",
            "validation_inconclusive",
        )
    if not done.passed:
        return Verdict(
            False,
            f"model {candidate.id} was not non-inferior on site set "
            f"v{site.version}: {done.metrics.get('summary', '')}",
            "not_non_inferior",
        )
    return Verdict(True, f"non-inferior on site set v{site.version}", "validated")


def _empty_message(site, model_id: int) -> str:
    return (
        f"site set v{site.version} of the {site.task} task is empty (0 studies): it was "
        f"frozen before any signed, labelled {site.task} study was held out, so model "
        f"{model_id} cannot be judged on it — the set is the problem, not the candidate. "
        f"Sign more studies, then build a new set (medai models site-set --task "
        f"{site.task})"
    )


def _predict_all(
    p,
    row: RegisteredModel,
    data: list[bytes],
    metas: list[dict] | None = None,
    keep: list[dict] | None = None,
) -> list[dict | None]:
    """Each image's result (None: refused or unreadable); with ``keep``, also what monitoring
    keeps of each analysis — the model's monitoring reference once it serves."""

    predictor = model_dirs.load(Path(p.home) / row.path, runtime=p.models.imaging_runtime)
    out: list[Any] = []
    metas = metas or [{}] * len(data)
    for i, blob in enumerate(data):
        try:
            image = imaging_service.read_image(blob)
            result = predictor.predict(image)
        except Exception as exc:  # broad: decoders, models: counted refused (logged)
            log.warning("validation: an image could not be read (%s)", type(exc).__name__)
            out.append(None)
            continue
        payload = result.model_dump(mode="json")
        out.append(None if result.refused else payload)
        if keep is not None:
            sample = sample_of(
                row.task, row.content_hash, payload, image, metas[i], result.embedding
            )
            keep.append({k: getattr(sample, k) for k in REFERENCE_FIELDS})
    return out


def _scores(results: list[dict | None], label: str) -> tuple[np.ndarray, np.ndarray]:
    """(probability, decided) per study; a refusal scores 0 and decides nothing."""
    prob, decided = [], []
    for r in results:
        if r is None:
            prob.append(0.0)
            decided.append(False)
            continue
        probs = {f["label"]: f["probability"] for f in r.get("findings", [])}
        prob.append(float(probs.get(label, 0.0)))
        decided.append(label in ((r.get("decision") or {}).get("positives") or []))
    return np.array(prob), np.array(decided)


def _operating(y: np.ndarray, decided: np.ndarray) -> dict[str, Any]:
    tp, fp = int((decided & y).sum()), int((decided & ~y).sum())
    fn = int((~decided & y).sum())
    return {"sensitivity": drift.wilson(tp, tp + fn), "ppv": drift.wilson(tp, tp + fp)}


def _macro_auc(y: np.ndarray, scores: np.ndarray, idx: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    aucs = [
        roc_auc_score(y[idx, j], scores[idx, j])
        for j in range(y.shape[1])
        if len(np.unique(y[idx, j])) == 2
    ]
    return float(np.mean(aucs)) if aucs else None


def _macro_sens(y: np.ndarray, decided: np.ndarray, idx: np.ndarray) -> float | None:
    sens = [
        float((decided[idx, j] & y[idx, j]).sum() / y[idx, j].sum())
        for j in range(y.shape[1])
        if y[idx, j].sum()
    ]
    return float(np.mean(sens)) if sens else None


def _paired(y, cand, act, stat, n_boot: int, seed: int) -> dict[str, float | None]:
    """The difference candidate − active of ``stat`` and its 95 % paired-bootstrap bounds."""
    full = np.arange(len(y))
    a, b = stat(y, cand, full), stat(y, act, full)
    if a is None or b is None:
        return {"difference": None, "low": None, "high": None}
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        x, z = stat(y, cand, idx), stat(y, act, idx)
        if x is not None and z is not None:
            diffs.append(x - z)
    # an interval from fewer than half the resamples (the rest had no positive or no
    # negative study) is undefined
    low, high = np.percentile(diffs, [2.5, 97.5]) if 2 * len(diffs) >= n_boot else (None, None)
    return {
        "difference": round(a - b, 4),
        "low": None if low is None else round(float(low), 4),
        "high": None if high is None else round(float(high), 4),
        "resamples": len(diffs),
    }


def validate(
    p, candidate_id: int, actor: str, margin: float | None = None, n_boot: int = 500, seed: int = 0
) -> Validation:
    """Evaluate a candidate beside the active model on the newest site set; store the
    verdict (a ``Validation`` row) and return it (``margin``: ``MEDAI_VALIDATION_MARGIN``
    unless given)."""
    margin = p.settings.models.validation_margin if margin is None else margin
    with p.db.reader() as db:
        cand = get(db, candidate_id)
        require_served(cand.task, "validated on a site set")
        site = site_sets.latest(db, cand.task)
        if site is None:
            missing = LifecycleError(verdict(db, cand).message)
            missing.code = "no_site_set"
            raise missing
        if not site.studies:
            raise EmptySiteSet(_empty_message(site, cand.id))
        current = active(db, cand.task)
        trained_on = {
            sid
            for d in (cand.card or {}).get("data", [])
            if isinstance(d, dict)
            for sid in d.get("study_ids", [])
        }
        items = [s for s in site.studies if s["study_id"] not in trained_on]
        left_out = len(site.studies) - len(items)
        meta = {
            s.id: (s.file_sha256, s.source or "upload", s.modality)
            for s in db.scalars(select(Study).where(Study.id.in_([i["study_id"] for i in items])))
        }
        for r in (cand, current):
            if r is not None:
                db.expunge(r)
        site_id, site_version = site.id, site.version
    items = [i for i in items if i["study_id"] in meta]
    if not items:
        raise LifecycleError(
            f"site set v{site_version} has no study the candidate was not trained on"
        )

    # the image frozen with the labels (a set frozen before images were: the study's file)
    data = [p.store.read(i.get("image") or meta[i["study_id"]][0]) for i in items]
    groups = [
        {
            "source": meta[i["study_id"]][1] or "upload",
            "modality": meta[i["study_id"]][2] or "",
            **header_population(blob),
        }
        for i, blob in zip(items, data, strict=True)
    ]
    reference: list[dict] = []
    cand_res = _predict_all(
        p,
        cand,
        data,
        [{"modality": g["modality"], "source": g["source"]} for g in groups],
        keep=reference,
    )
    act_res = _predict_all(p, current, data) if current is not None else None
    labels = sorted(
        {lab for i in items for lab in i["labels"]}
        & set((cand.card or {}).get("labels", []))
        & (
            set((current.card or {}).get("labels", []))
            if current
            else {lab for i in items for lab in i["labels"]}
        )
    )
    y = np.array([[bool(i["labels"].get(lab, False)) for lab in labels] for i in items])
    metrics: dict[str, Any] = {
        "site_set": site_version,
        "studies": len(items),
        "left_out_trained_on": left_out,
        "labels": {},
        "margin": margin,
    }
    cs, cd, as_, ad = [], [], [], []
    for j, lab in enumerate(labels):
        prob, dec = _scores(cand_res, lab)
        cs.append(prob)
        cd.append(dec)
        entry = {
            "positives": int(y[:, j].sum()),
            "candidate": {
                **auroc_with_ci(y[:, j], prob, n_boot=n_boot, seed=seed),
                **_operating(y[:, j], dec),
            },
        }
        if act_res is not None:
            aprob, adec = _scores(act_res, lab)
            as_.append(aprob)
            ad.append(adec)
            entry["active"] = {
                **auroc_with_ci(y[:, j], aprob, n_boot=n_boot, seed=seed),
                **_operating(y[:, j], adec),
            }
        metrics["labels"][lab] = entry
    outcome, summary = _decide(
        metrics, y, cs, cd, as_, ad, act_res is not None, margin, n_boot, seed
    )
    passed = outcome == "passed"
    metrics["outcome"] = outcome
    metrics["subgroups"] = _subgroups(groups, y, cs, as_)
    metrics["summary"] = summary
    metrics["monitor_reference"] = reference  # the candidate's outputs here: its drift baseline
    row = Validation(
        model_id=candidate_id,
        active_model_id=current.id if current else None,
        site_set_id=site_id,
        margin=margin,
        passed=passed,
        metrics=metrics,
        created_by=actor[:64],
    )
    with p.db.session() as db:
        db.add(row)
        db.flush()
        audit.record(
            db,
            audit.Actor(actor),
            "model",
            "model",
            candidate_id,
            op="validate",
            site_set=site_version,
            passed=passed,
            outcome=outcome,
            summary=summary,
        )
        db.expunge(row)
    return row


def _inconclusive(
    metrics: dict[str, Any], reason: str, n: int, judged: str = ""
) -> tuple[str, str]:
    detail = {"reason": reason, "studies": n, "minimum": MIN_STUDIES}
    metrics["inconclusive"] = detail
    text = inconclusive_text(detail)
    return "inconclusive", f"{text[0].upper()}{text[1:]}" + (f"; {judged}" if judged else "")


def _decide(metrics, y, cs, cd, as_, ad, has_active, margin, n_boot, seed) -> tuple[str, str]:
    """(outcome, summary): ``passed``, ``not_non_inferior`` or ``inconclusive``."""
    n = len(y)
    if not cs or y.size == 0 or not (y.any(axis=0) & ~y.all(axis=0)).any():
        return _inconclusive(metrics, "no_positives", n)
    cand_s, cand_d = np.stack(cs, axis=1), np.stack(cd, axis=1)
    if not has_active:
        metrics["macro_auroc"] = _macro_auc(y, cand_s, np.arange(len(y)))
        if n < MIN_STUDIES:
            return _inconclusive(metrics, "too_few_studies", n, "no active model to compare with")
        return "passed", f"no active model to compare with; evaluated alone on {n} studies"
    act_s, act_d = np.stack(as_, axis=1), np.stack(ad, axis=1)
    auc = _paired(y, cand_s, act_s, _macro_auc, n_boot, seed)
    sens = _paired(y, cand_d, act_d, _macro_sens, n_boot, seed + 1)
    metrics["macro_auroc_difference"], metrics["macro_sensitivity_difference"] = auc, sens
    judged = (
        f"macro AUROC difference {auc['difference']} (95% CI {auc['low']} to "
        f"{auc['high']}), macro sensitivity difference {sens['difference']} (95% CI "
        f"{sens['low']} to {sens['high']}) on {n} studies; margin {margin}"
    )
    if n < MIN_STUDIES:
        return _inconclusive(metrics, "too_few_studies", n, judged)
    if any(d[k] is None for d in (auc, sens) for k in ("difference", "low", "high")):
        return _inconclusive(metrics, "undefined_interval", n, judged)
    # a zero-width interval (every resample gave one difference) on MIN_STUDIES or more is
    # the models behaving alike (or one missing what the other finds) on every study: said
    notes = [
        f"the {what} interval has zero width: every resample of the {n} studies gave "
        f"the same difference"
        for d, what in ((auc, "AUROC"), (sens, "sensitivity"))
        if d["low"] == d["high"]
    ]
    ok = all(d["low"] >= -margin for d in (auc, sens))
    summary = f"{judged}: {'non-inferior' if ok else 'not shown non-inferior'}" + (
        f" ({'; '.join(notes)})" if notes else ""
    )
    return ("passed" if ok else "not_non_inferior"), summary


SUBGROUPS = ("source", "modality", "view", "manufacturer", "age_band", "sex")


def _subgroups(groups: list[dict[str, str]], y, cs, as_) -> dict[str, Any]:
    """Macro AUROC of each model per source, modality, view, device manufacturer, age band
    and sex (the last four where the DICOM header says), where a group is big enough."""
    if not cs:
        return {}
    cand, act = np.stack(cs, axis=1), (np.stack(as_, axis=1) if as_ else None)
    out: dict[str, Any] = {}
    for name in SUBGROUPS:
        members: dict[str, list[int]] = {}
        for k, g in enumerate(groups):
            if g.get(name):
                members.setdefault(g[name], []).append(k)
        for value, idx in members.items():
            if len(idx) < MIN_SUBGROUP:
                continue
            ix = np.array(idx)
            out[f"{name}={value}"] = {
                "n": len(idx),
                "candidate_macro_auroc": _macro_auc(y, cand, ix),
                "active_macro_auroc": _macro_auc(y, act, ix) if act is not None else None,
            }
    return out


def as_dict(v: Validation) -> dict[str, Any]:
    return {
        "id": v.id,
        "model_id": v.model_id,
        "active_model_id": v.active_model_id,
        "site_set_id": v.site_set_id,
        "margin": v.margin,
        "passed": v.passed,
        "outcome": outcome_of(v),
        "inconclusive": v.metrics.get("inconclusive"),
        "metrics": {k: x for k, x in v.metrics.items() if k != "monitor_reference"},
        "monitor_reference_n": len(v.metrics.get("monitor_reference", [])),
        "created_by": v.created_by,
        "created_at": iso_utc(v.created_at),
    }


def latest_for(db: Session, model_id: int) -> dict[str, Any] | None:
    """The model's latest validation, briefly (for the registry list)."""
    v = db.scalar(
        select(Validation)
        .where(Validation.model_id == model_id)
        .order_by(Validation.id.desc())
        .limit(1)
    )
    if v is None:
        return None
    site = db.get(SiteSet, v.site_set_id)
    return {
        "passed": v.passed,
        "outcome": outcome_of(v),
        "inconclusive": v.metrics.get("inconclusive"),
        "site_set": site.version if site else None,
        "active_model_id": v.active_model_id,
        "summary": v.metrics.get("summary"),
        "at": iso_utc(v.created_at),
    }


def promote(
    db: Session, model_id: int, actor: audit.Actor, reason: str | None, override: bool = False
) -> RegisteredModel | None:
    """Make a registered model the active one of its task; returns the model it replaced.
    Without ``override`` the site validation must clear it (``verdict``)."""
    reason = reason_of(reason)
    row = get(db, model_id)
    require_served(row.task, "promoted")
    if row.state == "active":
        raise MoveRefused(f"model {model_id} is already the active {row.task} model")
    if row.state not in MOVES["active"]:
        raise MoveRefused(
            f"model {model_id} is {row.state}; only "
            f"{', '.join(MOVES['active'])} models can be promoted"
        )
    if not override:
        judged = verdict(db, row)
        if not judged.passed:
            refused = PromotionRefused(
                f"{judged.message}; an admin may promote it anyway with an override and a reason"
            )
            refused.code = judged.code  # no_site_set | not_validated | not_non_inferior
            raise refused
    return activate(db, row, reason, actor, override)


def promote_model(
    db: Session, model_id: int, actor: audit.Actor, reason: str | None, override: bool = False
) -> dict[str, Any]:
    """``promote``, and the promoted model as read after it (``model_registry.as_dict``) with
    ``replaced``: the id of the model it replaced (None: there was none)."""
    replaced = promote(db, model_id, actor, reason, override)
    return {
        **model_registry.as_dict(get(db, model_id)),
        "replaced": replaced.id if replaced is not None else None,
    }


def registry_listing(
    db: Session, task: str | None = None, state: str | None = None
) -> list[dict[str, Any]]:
    """The registered models (of ``task``, in ``state``) as the registry page reads them: each
    model (``model_registry.as_dict``) with its latest site validation (``latest_for``) and,
    for an active one, the model a rollback would re-activate (``rollback_to``)."""
    return [
        {
            **model_registry.as_dict(r),
            "validation": latest_for(db, r.id),
            "rollback_to": model_registry.rollback_preview(db, r.task)
            if r.state == "active"
            else None,
        }
        for r in model_registry.listing(db, task, state)
    ]
