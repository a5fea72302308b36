"""Monitoring of every model in use: what it analysed, how its outputs and inputs move against
its reference, how often radiologists agree with it, and alerts when a threshold is crossed.

Each analysis leaves a sample (``observe``): latency, refusal, abstention (an indeterminate
decision), the probability of each label and the decided positives, the image's statistics
(mean and spread of its normalised pixels, size), its embedding (the model's penultimate
features on the gate's first principal axes, whitened) and its metadata mix (modality, view,
source; device manufacturer, age band and sex from the DICOM header) — never patient text or
identifiers, and sealed at rest beside its study (``tables.MonitorSample``). A model's **reference** is what it gave on the site set at its latest site
validation (kept by ``validation``), or, for a model never validated here, its first
``MEDAI_MONITOR_REFERENCE_N`` analyses at this site; the **window** is its latest
``MEDAI_MONITOR_WINDOW`` analyses (after those first ones).
``check`` runs after every sample and every signature and raises (or clears) alerts:

- ``output``: a label's probabilities moved (KS p < MEDAI_MONITOR_P and PSI ≥ MEDAI_MONITOR_PSI);
- ``input``: an image statistic moved (KS p < MEDAI_MONITOR_P and its median by ≥
  MEDAI_MONITOR_SHIFT);
- ``input``/``embedding``: the features moved (Hotelling's T² p < MEDAI_MONITOR_P and the
  Mahalanobis distance between the means ≥ MEDAI_MONITOR_EMBEDDING_SHIFT);
- ``metadata``: the modality/view/source mix, or the manufacturer, age-band or sex mix,
  changed (chi-square p < MEDAI_MONITOR_P and PSI ≥ MEDAI_MONITOR_PSI);
- ``agreement``: radiologists agreed with a label on fewer than MEDAI_MONITOR_AGREEMENT of
  the last signed studies (once MEDAI_MONITOR_AGREEMENT_N are signed).

Both a test and an effect size must say so, so a stable stream of the same length stays quiet.
A new alert is stored, audited, logged and, with MEDAI_MONITOR_WEBHOOK_URL, POSTed as JSON.

A comparison with no data on a side (an empty window, before the first analyses after the
reference) has no statistic: its PSI, KS and p are None with its ``n``, never 0 and 1.0, which
would read as "no drift". Agreement is reported only for the labels the monitored model has
(a radiologist may add a label the model never outputs: that is no agreement with it)."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from medai.core import task_registry
from medai.platform.access import audit
from medai.platform.lifecycle import drift, model_registry, triage_labels
from medai.platform.lifecycle.labels import latest_versions
from medai.platform.records.db import lock_key, utcnow
from medai.platform.records.localtime import iso_utc
from medai.platform.records.tables import (
    MonitorAlert,
    MonitorSample,
    RegisteredModel,
    Study,
    StudyLabel,
    Validation,
)
from medai.platform.worklist.study_state import RETRACTED
from medai.settings import MonitorSettings

if TYPE_CHECKING:
    from medai.platform.context import Platform

log = logging.getLogger("medai.platform.lifecycle")
MONITOR = audit.Actor(name="medai-monitor")
AGREEMENT_WINDOW = 100
STATS = ("mean", "std")
POPULATION = ("manufacturer", "age_band", "sex")  # from the DICOM header, "" when unknown


def image_stats(image) -> dict[str, float]:
    """Mean and spread of the normalised pixels (0–1) and the size analysed."""
    if image is None:
        return {}
    px = image.pixels
    return {
        "mean": round(float(px.mean()), 5),
        "std": round(float(px.std()), 5),
        "width": int(px.shape[1]),
        "height": int(px.shape[0]),
    }


REFERENCE_FIELDS = ("refused", "abstained", "probs", "positives", "stats", "meta")


def sample_of(
    task: str,
    model_hash: str,
    payload: dict,
    image=None,
    meta: dict | None = None,
    embedding: list[float] | None = None,
    study_id: int | None = None,
    latency_ms: float | None = None,
) -> MonitorSample:
    """What monitoring keeps of one analysis (not yet stored): also what a site validation
    keeps of the candidate's outputs as its monitoring reference."""
    decision = payload.get("decision") or {}
    info = payload.get("image") or {}
    header = getattr(image, "metadata", None) or {}
    stats: dict[str, Any] = image_stats(image)
    if embedding:
        stats["embedding"] = [float(f"{float(v):.6g}") for v in embedding]
    return MonitorSample(
        task=task,
        model_hash=model_hash,
        study_id=study_id,
        latency_ms=latency_ms,
        refused=bool(payload.get("refused")),
        abstained=decision.get("state") == "indeterminate",
        probs={f["label"]: round(float(f["probability"]), 5) for f in payload.get("findings", [])},
        positives=list(decision.get("positives") or []),
        stats=stats,
        meta={
            "modality": (meta or {}).get("modality") or info.get("modality") or "",
            "view": (meta or {}).get("view") or info.get("view_position") or "",
            "source": (meta or {}).get("source") or info.get("format") or "",
            **{k: str(header.get(k) or "")[:64] for k in POPULATION},
        },
    )


def observe(
    p: Platform,
    study_id: int | None,
    task: str,
    model_hash: str,
    payload: dict,
    image=None,
    latency_ms: float | None = None,
    meta: dict | None = None,
    embedding: list[float] | None = None,
) -> None:
    """Keep one analysis's sample, then check the model's thresholds with it (never raises:
    monitoring must not fail an analysis). One session, two transactions: the sample is
    committed before the check begins, so a check that fails never loses it."""
    kept = False
    try:
        sample = sample_of(task, model_hash, payload, image, meta, embedding, study_id, latency_ms)
        with p.db.session() as db:
            db.add(sample)
            db.commit()  # the sample is kept whatever the check below finds
            kept = True
            new = [as_dict(a) for a in _alerts(db, task, model_hash, p.settings.monitor)]
        _announce(new, p.settings.monitor.monitor_webhook_url)
    except Exception as exc:  # broad: monitoring never fails the study it watches (logged)
        if kept:
            log.error(
                "monitoring for study %s: sample kept, alert check failed: %s",
                study_id,
                type(exc).__name__,
            )
        else:
            log.error("monitoring sample for study %s not kept: %s", study_id, type(exc).__name__)


_REFERENCES: dict[int, list[MonitorSample]] = {}  # validation id → its reference (read-only)


def _validation_reference(
    db, task: str, model_hash: str, min_window: int
) -> tuple[list[MonitorSample], dict[str, Any]] | None:
    """The model's outputs on the site set at its latest validation, when that kept at least
    MEDAI_MONITOR_MIN_WINDOW of them: the reference the site signed off on."""
    row = db.execute(
        select(Validation.id, Validation.site_set_id)
        .join(RegisteredModel, RegisteredModel.id == Validation.model_id)
        .where(RegisteredModel.task == task, RegisteredModel.content_hash == model_hash)
        .order_by(Validation.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    if row.id not in _REFERENCES:
        metrics = db.scalar(select(Validation.metrics).where(Validation.id == row.id)) or {}
        if len(_REFERENCES) > 32:
            _REFERENCES.clear()
        _REFERENCES[row.id] = [
            MonitorSample(task=task, model_hash=model_hash, **{k: x[k] for k in REFERENCE_FIELDS})
            for x in metrics.get("monitor_reference", [])
        ]
    samples = _REFERENCES[row.id]
    if len(samples) < min_window:
        return None
    return samples, {"kind": "site_validation", "validation_id": row.id, "n": len(samples)}


def _split(
    db, task: str, model_hash: str, s: MonitorSettings
) -> tuple[list[MonitorSample], list[MonitorSample], dict[str, Any]]:
    """(reference, window, where the reference came from): the model's outputs on the site
    set when a validation kept them, else its first analyses here."""
    base = select(MonitorSample).where(
        MonitorSample.task == task, MonitorSample.model_hash == model_hash
    )
    validated = _validation_reference(db, task, model_hash, s.monitor_min_window)
    if validated is not None:
        window = list(db.scalars(base.order_by(MonitorSample.id.desc()).limit(s.monitor_window)))
        return validated[0], window[::-1], validated[1]
    reference = list(db.scalars(base.order_by(MonitorSample.id).limit(s.monitor_reference_n)))
    source = {"kind": "first_analyses", "n": len(reference)}
    if len(reference) < s.monitor_reference_n:
        return reference, [], source
    window = list(
        db.scalars(
            base.where(MonitorSample.id > reference[-1].id)
            .order_by(MonitorSample.id.desc())
            .limit(s.monitor_window)
        )
    )
    return reference, window[::-1], source


def _mix(samples: list[MonitorSample]) -> list[str]:
    return [
        f"{x.meta.get('modality', '')}/{x.meta.get('view', '')}/{x.meta.get('source', '')}"
        for x in samples
    ]


def model_labels(db, task: str, model_hash: str) -> set[str] | None:
    """The labels the model outputs: its registered card's, else those its samples carry
    (None: unknown)."""
    card = db.scalar(
        select(RegisteredModel.card).where(
            RegisteredModel.task == task, RegisteredModel.content_hash == model_hash
        )
    )
    if card and card.get("labels"):
        return set(card["labels"])
    probs = db.scalar(
        select(MonitorSample.probs)
        .where(
            MonitorSample.task == task,
            MonitorSample.model_hash == model_hash,
            MonitorSample.refused.is_(False),
        )
        .limit(1)
    )
    return set(probs) if probs else None


def _agreement(db, task: str, model_hash: str) -> dict[str, dict[str, Any]]:
    """Per label the model has, over the last signed studies this model analysed: agreement,
    sensitivity and PPV of the AI against the signatures, with 95 % Wilson intervals (a label
    the radiologist added that the model never outputs is left out: the model said nothing
    about it)."""
    own = model_labels(db, task, model_hash)
    latest = (
        latest_versions(StudyLabel.model_hash == model_hash)
        .order_by(StudyLabel.study_id.desc())
        .limit(AGREEMENT_WINDOW)
        .subquery()
    )
    # the verdicts are sealed (each value a decryption): only the three read, and the AI's
    # undecided labels left out here rather than in SQL
    rows = db.execute(
        select(StudyLabel.label, StudyLabel.present, StudyLabel.ai_positive)
        .join(
            latest,
            (latest.c.study_id == StudyLabel.study_id) & (latest.c.v == StudyLabel.report_version),
        )
        .join(Study, Study.id == StudyLabel.study_id)
        .where(Study.status != RETRACTED)  # entered in error: its signature counts for nothing
    )
    counts: dict[str, list[int]] = {}
    for label, present, ai_positive in rows:
        if ai_positive is None or (own is not None and label not in own):
            continue
        c = counts.setdefault(label, [0, 0, 0, 0])  # tp, fp, fn, tn
        c[(0 if present else 1) if ai_positive else (2 if present else 3)] += 1
    out = {}
    for label, (tp, fp, fn, tn) in sorted(counts.items()):
        n = tp + fp + fn + tn
        out[label] = {
            "n": n,
            "agreement": drift.wilson(tp + tn, n),
            "sensitivity": drift.wilson(tp, tp + fn),
            "ppv": drift.wilson(tp, tp + fp),
        }
    return out


def conditions(
    db, task: str, model_hash: str, s: MonitorSettings
) -> tuple[dict[tuple[str, str], dict], dict]:
    """{(kind, key): detail} of every threshold crossed now, and the numbers behind them
    (the thresholds: ``s``, the platform's ``settings.monitor``)."""
    reference, window, source = _split(db, task, model_hash, s)
    crossed: dict[tuple[str, str], dict] = {}
    numbers: dict[str, Any] = {
        "reference_n": len(reference),
        "window_n": len(window),
        "reference_source": source,
        "labels": {},
        "inputs": {},
        "metadata": {},
    }
    ready = len(window) >= s.monitor_min_window
    ref_ok = [x for x in reference if not x.refused]
    win_ok = [x for x in window if not x.refused]
    for label in sorted({k for x in ref_ok for k in x.probs}):
        r = [x.probs[label] for x in ref_ok if label in x.probs]
        c = [x.probs[label] for x in win_ok if label in x.probs]
        both = bool(r and c)  # else no statistic: None, never 0 / 1.0 ("no drift")
        stat, p = drift.ks(r, c) if both else (None, None)
        value = drift.psi(r, c) if both else None
        numbers["labels"][label] = {
            "reference_positive_rate": drift.wilson(
                sum(label in x.positives for x in ref_ok), len(ref_ok)
            )[0],
            "window_positive_rate": drift.wilson(
                sum(label in x.positives for x in win_ok), len(win_ok)
            )[0],
            "reference_n": len(r),
            "window_n": len(c),
            "psi": _round(value),
            "ks": _round(stat),
            "p": p,
        }
        # both (testable): p and the statistic are numbers, never None
        if ready and both and p < s.monitor_p and value >= s.monitor_psi:  # type: ignore[operator]
            crossed[("output", label)] = {"value": value, "threshold": s.monitor_psi, "p": p}
    for name in STATS:  # refused images too: a new device the gate refuses is input drift
        r = [x.stats[name] for x in reference if name in x.stats]
        c = [x.stats[name] for x in window if name in x.stats]
        both = bool(r and c)
        stat, p = drift.ks(r, c) if both else (None, None)
        rm, cm = drift.median(r), drift.median(c)
        shift = abs(cm - rm) if rm is not None and cm is not None else 0.0
        numbers["inputs"][name] = {
            "reference_median": rm,
            "window_median": cm,
            "reference_n": len(r),
            "window_n": len(c),
            "ks": _round(stat),
            "p": p,
        }
        # both (testable): p and the statistic are numbers, never None
        if ready and both and p < s.monitor_p and shift >= s.monitor_shift:  # type: ignore[operator]
            crossed[("input", name)] = {"value": shift, "threshold": s.monitor_shift, "p": p}
    rmix, cmix = _mix(reference), _mix(window)
    both = bool(rmix and cmix)
    p = drift.chi_square_p(rmix, cmix) if both else None
    value = drift.categorical_psi(rmix, cmix) if both else None
    numbers["metadata"] = {
        "psi": _round(value),
        "p": p,
        "reference_n": len(rmix),
        "window_n": len(cmix),
        "reference": _shares(rmix),
        "window": _shares(cmix),
    }
    # both (testable): p and the statistic are numbers, never None
    if ready and both and p < s.monitor_p and value >= s.monitor_psi:  # type: ignore[operator]
        crossed[("metadata", "mix")] = {"value": value, "threshold": s.monitor_psi, "p": p}
    numbers["population"] = {}
    for field in POPULATION:  # each on its own: a joint mix would be too sparse to test
        r = [x.meta.get(field, "") for x in reference]
        c = [x.meta.get(field, "") for x in window]
        if not any(r) and not any(c):
            continue
        both = bool(r and c)
        p = drift.chi_square_p(r, c) if both else None
        value = drift.categorical_psi(r, c) if both else None
        numbers["population"][field] = {
            "psi": _round(value),
            "p": p,
            "reference_n": len(r),
            "window_n": len(c),
            "reference": _shares(r),
            "window": _shares(c),
        }
        # both (testable): p and the statistic are numbers, never None
        if ready and both and p < s.monitor_p and value >= s.monitor_psi:  # type: ignore[operator]
            crossed[("metadata", field)] = {"value": value, "threshold": s.monitor_psi, "p": p}
    r_emb = [x.stats["embedding"] for x in ref_ok if x.stats.get("embedding")]
    c_emb = [x.stats["embedding"] for x in win_ok if x.stats.get("embedding")]
    dims = len(r_emb[0]) if r_emb else 0
    # Hotelling's test needs two vectors a side and more vectors than dimensions
    testable = len(r_emb) >= 2 and len(c_emb) >= 2 and len(r_emb) + len(c_emb) - dims - 1 >= 1
    distance, p = drift.hotelling(r_emb, c_emb) if testable else (None, None)
    numbers["embedding"] = {
        "reference_n": len(r_emb),
        "window_n": len(c_emb),
        "dimensions": dims,
        "distance": _round(distance),
        "p": p,
    }
    # both (testable): p and the statistic are numbers, never None
    if ready and testable and p < s.monitor_p and distance >= s.monitor_embedding_shift:  # type: ignore[operator]
        crossed[("input", "embedding")] = {
            "value": distance,
            "threshold": s.monitor_embedding_shift,
            "p": p,
        }
    agreement = _agreement(db, task, model_hash)
    numbers["agreement"] = agreement
    if _records_outcomes(task):  # staff's recorded departments and urgency (triage_labels)
        t = triage_labels.agreement(db, model_hash)
        numbers["outcomes"] = t
        answered = t["n"] - t["abstained"]
        rate = t["department"][0]
        if answered >= s.monitor_agreement_n and rate is not None and rate < s.monitor_agreement:
            crossed[("agreement", "department")] = {
                "value": rate,
                "n": answered,
                "threshold": s.monitor_agreement,
            }
    for label, a in agreement.items():
        rate = a["agreement"][0]
        if a["n"] >= s.monitor_agreement_n and rate is not None and rate < s.monitor_agreement:
            crossed[("agreement", label)] = {
                "value": rate,
                "threshold": s.monitor_agreement,
                "n": a["n"],
            }
    return crossed, numbers


def _records_outcomes(task: str) -> bool:
    """Whether staff record the outcome of the task's answers (``Task.recorded_outcomes``:
    where a triaged patient was actually sent); a task no longer registered has none."""
    try:
        return task_registry.get(task).recorded_outcomes
    except task_registry.TaskError:
        return False


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _shares(values: list[str]) -> dict[str, float]:
    n = max(1, len(values))
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return {k: round(c / n, 4) for k, c in sorted(counts.items())}


def check(p: Platform, task: str, model_hash: str) -> list[MonitorAlert]:
    """Raise the alerts newly crossed and clear those no longer crossed; returns the new."""
    with p.db.session() as db:
        new = _alerts(db, task, model_hash, p.settings.monitor)
        payloads = [as_dict(a) for a in new]
    _announce(payloads, p.settings.monitor.monitor_webhook_url)
    return new


def _alerts(db, task: str, model_hash: str, settings: MonitorSettings) -> list[MonitorAlert]:
    """In ``db``'s transaction: the alerts newly crossed stored and audited, those no longer
    crossed cleared; returns the new. The model's checks are serialised (``db.lock_key``):
    workers on several nodes finishing studies at once would otherwise each find no open alert
    and raise the same one twice (twice the webhook)."""
    lock_key(db, f"monitor:{task}:{model_hash}")
    crossed, numbers = conditions(db, task, model_hash, settings)
    open_ = {
        (a.kind, a.key): a
        for a in db.scalars(
            select(MonitorAlert).where(
                MonitorAlert.task == task,
                MonitorAlert.model_hash == model_hash,
                MonitorAlert.cleared_at.is_(None),
            )
        )
    }
    new = []
    for (kind, key), detail in crossed.items():
        if (kind, key) in open_:
            continue
        alert = MonitorAlert(
            task=task,
            model_hash=model_hash,
            kind=kind,
            key=key[:64],
            value=float(detail["value"]),
            threshold=float(detail["threshold"]),
            samples=numbers["window_n"],
            detail=detail,
        )
        db.add(alert)
        db.flush()
        audit.record(
            db,
            MONITOR,
            "monitor",
            "model",
            None,
            task=task,
            kind=kind,
            key=key,
            value=round(float(detail["value"]), 4),
            model_hash=model_hash,
            alert=alert.id,
        )
        new.append(alert)
    for opened, alert in open_.items():
        if opened not in crossed:
            alert.cleared_at = utcnow()
    return new


def _announce(alerts: list[dict[str, Any]], url: str | None) -> None:
    """Each new alert (``as_dict``) logged and, with a webhook, POSTed (after its transaction
    committed)."""
    for a in alerts:
        log.warning(
            "monitoring alert: %s model %s: %s %s = %.4g (threshold %.4g)",
            a["task"],
            a["model_hash"][:19],
            a["kind"],
            a["key"],
            a["value"],
            a["threshold"],
        )
        _webhook(a, url)


def _webhook(alert: dict, url: str | None) -> None:
    if not url:
        return

    def post() -> None:
        import httpx

        try:
            httpx.post(url, json={"event": "medai.monitor.alert", **alert}, timeout=5)
        except httpx.HTTPError as exc:
            log.error("monitoring webhook failed: %s", type(exc).__name__)

    threading.Thread(target=post, name="medai-monitor-webhook", daemon=True).start()


def as_dict(a: MonitorAlert) -> dict[str, Any]:
    return {
        "id": a.id,
        "task": a.task,
        "model_hash": a.model_hash,
        "kind": a.kind,
        "key": a.key,
        "value": a.value,
        "threshold": a.threshold,
        "samples": a.samples,
        "detail": a.detail,
        "at": iso_utc(a.at),
        "cleared_at": iso_utc(a.cleared_at),
    }


def after_signature(p: Platform, study_id: int) -> None:
    """Check agreement for the model whose result the signature judged (never raises)."""
    try:
        with p.db.reader() as db:
            model_hash = db.scalar(
                select(StudyLabel.model_hash)
                .where(StudyLabel.study_id == study_id)
                .order_by(StudyLabel.id.desc())
                .limit(1)
            )
            study = db.get(Study, study_id)
            task = study.task if study is not None else None
        if model_hash and task:
            check(p, task, model_hash)
    except Exception as exc:  # broad: monitoring never fails the signature it follows (logged)
        log.error(
            "monitoring after the signature of study %s failed: %s", study_id, type(exc).__name__
        )


def summary(p: Platform, task: str, model_hash: str, series_n: int = 200) -> dict[str, Any]:
    """Everything the monitoring page shows for one model, as numbers."""
    with p.db.reader() as db:
        _, numbers = conditions(db, task, model_hash, p.settings.monitor)
        recent = list(
            db.scalars(
                select(MonitorSample)
                .where(MonitorSample.task == task, MonitorSample.model_hash == model_hash)
                .order_by(MonitorSample.id.desc())
                .limit(series_n)
            )
        )[::-1]
        total = db.scalar(
            select(func.count())
            .select_from(MonitorSample)
            .where(MonitorSample.task == task, MonitorSample.model_hash == model_hash)
        )
        alerts = [
            as_dict(a)
            for a in db.scalars(
                select(MonitorAlert)
                .where(MonitorAlert.task == task, MonitorAlert.model_hash == model_hash)
                .order_by(MonitorAlert.id.desc())
                .limit(50)
            )
        ]
    s = p.settings.monitor
    window = recent[-s.monitor_window :]
    latencies = [x.latency_ms for x in window if x.latency_ms is not None]
    n = len(window)
    return {
        "task": task,
        "model_hash": model_hash,
        "volume": {"total": total, **{k: numbers[k] for k in ("reference_n", "window_n")}},
        "reference": numbers["reference_source"],
        "rates": {
            "refused": drift.wilson(sum(x.refused for x in window), n),
            "abstained": drift.wilson(sum(x.abstained for x in window), n),
        },
        "latency_ms": {
            "p50": drift.percentile(latencies, 0.5),
            "p95": drift.percentile(latencies, 0.95),
        },
        "triage": numbers.get("outcomes"),  # the page's name for the recorded outcomes
        "labels": numbers["labels"],
        "inputs": numbers["inputs"],
        "metadata": numbers["metadata"],
        "population": numbers["population"],
        "embedding": numbers["embedding"],
        "agreement": numbers["agreement"],
        "alerts": alerts,
        "settings": {
            "reference_n": s.monitor_reference_n,
            "window": s.monitor_window,
            "min_window": s.monitor_min_window,
            "embedding_shift": s.monitor_embedding_shift,
        },
        "series": [
            {
                "id": x.id,
                "mean": x.stats.get("mean"),
                "refused": x.refused,
                "positives": len(x.positives),
            }
            for x in recent
        ],
    }


def overview(p: Platform, task: str | None = None) -> dict[str, Any]:
    """The monitoring page: per active model (of ``task``, or of every task), the model
    (``model_registry.as_dict``) and its numbers and alerts (``summary``)."""
    with p.db.reader() as db:
        rows = [model_registry.as_dict(r) for r in model_registry.listing(db, task, "active")]
    return {"models": [{"model": r, **summary(p, r["task"], r["content_hash"])} for r in rows]}
