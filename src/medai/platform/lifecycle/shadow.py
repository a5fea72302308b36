"""Shadow mode: a model in state ``shadow`` also analyses every live study of its task, after
the active model's result is stored and shown. Its result is stored (an AI result of kind
``shadow`` naming the shadow model) beside the comparison with the active model's decision,
and is never shown to a clinician nor sent anywhere: every view reads kind ``imaging``.

A shadow model never costs the study anything: it runs after the study's draft is committed,
and a shadow model that fails to load or to read the image is logged and skipped."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from medai.core import model_dir as model_dirs
from medai.platform.documents.words.finding_states import decided_positives
from medai.platform.lifecycle import drift
from medai.platform.lifecycle.site_sets import signed_labels
from medai.platform.records.tables import AIResultRow, RegisteredModel
from medai.platform.worklist.ai_results import latest_result, save_result
from medai.services import imaging as imaging_service

if TYPE_CHECKING:
    from medai.platform.context import Platform

log = logging.getLogger("medai.platform.lifecycle")
KIND = "shadow"


class ShadowPool:
    """The shadow models this process has loaded, by stored path (dropped when they leave
    the shadow state)."""

    def __init__(self) -> None:
        self._loaded: dict[str, Any] = {}
        self._failed: set[str] = set()
        self._lock = threading.Lock()

    def predictors(self, p: Platform, task: str) -> list[Any]:
        with p.db.reader() as db:
            paths = [
                str(p.home / r)
                for r in db.scalars(
                    select(RegisteredModel.path).where(
                        RegisteredModel.task == task, RegisteredModel.state == KIND
                    )
                )
            ]
        out = []
        with self._lock:
            for stale in [
                k
                for k in self._loaded
                if k.startswith(f"{task}:") and k.split(":", 1)[1] not in paths
            ]:
                del self._loaded[stale]
            for path in paths:
                key = f"{task}:{path}"
                if key in self._failed:
                    continue
                if key not in self._loaded:
                    try:
                        self._loaded[key] = model_dirs.load(
                            Path(path), runtime=p.models.imaging_runtime, threads=p.models.threads
                        )
                    except Exception as exc:  # broad: a model loader never fails the study (logged)
                        self._failed.add(key)
                        log.error("shadow model %s did not load: %s", path, type(exc).__name__)
                        continue
                out.append(self._loaded[key])
        return out


def compare(active: dict, shadow: dict) -> dict:
    """The two decisions side by side: agreement and the labels on which they differ."""
    a, s = set(decided_positives(active)), set(decided_positives(shadow))
    return {
        "active_model_hash": (active.get("model") or {}).get("content_hash"),
        "active_refused": bool(active.get("refused")),
        "shadow_refused": bool(shadow.get("refused")),
        "agree": a == s and bool(active.get("refused")) == bool(shadow.get("refused")),
        "only_active": sorted(a - s),
        "only_shadow": sorted(s - a),
    }


def run(p: Platform, study_id: int, task: str, data: bytes, active_payload: dict) -> int:
    """Run every shadow model of ``task`` on the study (once per model); returns how many
    results were stored now."""

    pool: ShadowPool = p.extra.setdefault("shadow_pool", ShadowPool())
    try:
        predictors = pool.predictors(p, task)
    except Exception as exc:  # broad: a shadow lookup never fails the study (logged)
        log.error("shadow lookup for study %s failed: %s", study_id, type(exc).__name__)
        return 0
    stored = 0
    for predictor in predictors:
        ref = predictor.identity
        with p.db.reader() as db:
            if (
                db.scalar(
                    select(AIResultRow.id).where(
                        AIResultRow.study_id == study_id,
                        AIResultRow.kind == KIND,
                        AIResultRow.model_hash == ref.content_hash,
                    )
                )
                is not None
            ):
                continue
        try:
            payload = predictor.predict(imaging_service.read_image(data)).model_dump(mode="json")
        except Exception as exc:  # broad: a shadow model never fails the study (logged)
            log.error(
                "shadow model %s on study %s failed: %s",
                ref.content_hash[:19],
                study_id,
                type(exc).__name__,
            )
            continue
        payload["comparison"] = compare(active_payload, payload)
        save_result(p, study_id, KIND, ref, payload)
        stored += 1
    return stored


def summary(p: Platform, model: RegisteredModel) -> dict:
    """How a shadow model compares so far: with the active decisions (studies analysed,
    agreement, per label how often each side alone called it) and, on the studies since
    signed, with the radiologists (per label sensitivity and PPV of the shadow model and of
    the active model's stored result, side by side, with 95 % Wilson intervals)."""
    with p.db.reader() as db:
        rows = list(
            db.execute(
                select(AIResultRow.study_id, AIResultRow.payload).where(
                    AIResultRow.kind == KIND, AIResultRow.model_hash == model.content_hash
                )
            )
        )
        truth = signed_labels(db, model.task)
        active = {
            sid: getattr(latest_result(db, sid), "payload", None) or {}
            for sid, _ in rows
            if sid in truth
        }
    payloads = [x for _, x in rows]
    n = len(payloads)
    agree = sum(1 for x in payloads if (x.get("comparison") or {}).get("agree"))
    only_active: dict[str, int] = {}
    only_shadow: dict[str, int] = {}
    for x in payloads:
        c = x.get("comparison") or {}
        for lab in c.get("only_active", []):
            only_active[lab] = only_active.get(lab, 0) + 1
        for lab in c.get("only_shadow", []):
            only_shadow[lab] = only_shadow.get(lab, 0) + 1
    counts: dict[str, dict[str, list[int]]] = {}
    for sid, x in rows:
        if sid not in truth:
            continue
        for side, payload in (("shadow", x), ("active", active.get(sid) or {})):
            called = set(decided_positives(payload))
            for lab, present in truth[sid].items():
                c = counts.setdefault(lab, {}).setdefault(side, [0, 0, 0])  # tp, fp, fn
                if lab in called:
                    c[0 if present else 1] += 1
                elif present:
                    c[2] += 1
    signatures = {
        lab: {
            side: {"sensitivity": drift.wilson(tp, tp + fn), "ppv": drift.wilson(tp, tp + fp)}
            for side, (tp, fp, fn) in sides.items()
        }
        for lab, sides in sorted(counts.items())
    }
    return {
        "model_id": model.id,
        "content_hash": model.content_hash,
        "studies": n,
        "agreement": round(agree / n, 4) if n else None,
        "only_active": only_active,
        "only_shadow": only_shadow,
        "signed_studies": len(active),
        "signatures": signatures,
    }
