"""Fitting a model's scope checks (``medai imaging fit-scope``): the out-of-scope threshold on
the validation split's in-label films and, for a chest model, the view check. Apart from
``imaging.scope`` because fitting reads a data set through ``imaging.pipeline``, which itself
serves predictions that carry a scope: kept here, the two never import each other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medai.core import model_dir
from medai.core.model_dir import file_sha256, read_card, save_card
from medai.core.task_registry import get as get_task
from medai.imaging.datasets import load_dataset, patient_split
from medai.imaging.scope import OutOfScopeDetector, limits, look_alikes
from medai.imaging.views import ViewChecker, cross_validated, manifest_views

# --- fitting: ``medai imaging fit-scope``


def fit_scope(
    directory: Path, data: Path, seed: int = 13, view_check: bool = True, c: float = 0.01
) -> dict:
    """Fit the out-of-scope threshold (validation split of the split the model was trained on,
    same seed; lateral films left out) and, for a task read from frontal films whose data has a
    ``view`` column with laterals, the view check (``imaging.views``: every film of a known view,
    each also mirrored; its rates cross-validated by patient). Writes ``out_of_scope.json`` and
    ``view_check.npz``, records both in the card and reseals it."""
    import shlex

    import numpy as np

    from medai.imaging.pipeline import predict_streamed, split_groups

    directory = Path(directory)
    predictor = model_dir.load(directory)
    if predictor.gate is None:
        raise ValueError(
            f"{directory}: no gate.npz to measure distances with; fit it first "
            "(`medai imaging fit-gate`)"
        )
    task = predictor.cfg.task
    ds = load_dataset(data, task)
    _tr, va, _te = patient_split(ds, seed=seed, groups=split_groups(ds))
    views = manifest_views(Path(data)) if Path(data).is_file() else {}

    def view(i: int) -> tuple[str, str]:
        return views.get(str(Path(ds.records.path(i)).resolve()), ("unknown", ""))

    val = ds.subset(np.array([i for i in va if view(i)[0] != "lateral"], dtype=int))
    feats = predict_streamed(predictor, val)[1]
    distances = predictor.gate.distance(feats)
    command = shlex.join(
        [
            "medai",
            "imaging",
            "fit-scope",
            "--task",
            task,
            "--data",
            str(data),
            "--model",
            str(directory),
            "--seed",
            str(seed),
        ]
    )
    data_hash = file_sha256(data) if Path(data).is_file() else None
    detector = OutOfScopeDetector.fit(
        distances, seed=seed, laterals_left_out=int(len(va) - len(val.records))
    )
    detector.save(directory)
    record: dict[str, Any] = {
        "command": command,
        "data": {"path": str(data), "sha256": data_hash},
        "out_of_scope": {
            "detector": detector.detector,
            "threshold": detector.threshold,
            "quantile": detector.quantile,
            **detector.chosen_on,
        },
    }
    frontal_task = bool(get_task(task).dicom_views)
    known = [i for i in range(len(ds.records)) if view(i)[0] in ("frontal", "lateral")]
    lateral_n = sum(view(i)[0] == "lateral" for i in known)
    if view_check and frontal_task and lateral_n >= 2:
        sub = ds.subset(np.array(known, dtype=int))
        f, idx = _features(predictor, sub, mirrored=False)
        fm, _ = _features(predictor, sub, mirrored=True)
        kinds = [view(known[k])[0] for k in idx]
        groups = [view(known[k])[1] or f"image-{known[k]}" for k in idx]
        lat = np.array([k == "lateral" for k in kinds])
        checker = ViewChecker.fit(f[~lat], f[lat], c=c, mirrored=(fm[~lat], fm[lat]))
        checker.save(directory)
        entry: dict[str, Any] = {
            "file": "view_check.npz",
            "features": "the model's penultimate features (as the gate)",
            "frontal_films": int((~lat).sum()),
            "lateral_films": int(lat.sum()),
            "lateral_patients": len({g for g, is_l in zip(groups, lat, strict=True) if is_l}),
            "threshold": checker.threshold,
            "regularisation_c": c,
        }
        try:
            fo, lo = cross_validated(
                f[~lat],
                f[lat],
                [g for g, is_l in zip(groups, lat, strict=True) if not is_l],
                [g for g, is_l in zip(groups, lat, strict=True) if is_l],
                mirrored=(fm[~lat], fm[lat]),
                c=c,
            )
            entry["cross_validated"] = {
                "by": "patient (one fold per patient with a lateral film)",
                "laterals_caught": int((lo >= checker.threshold).sum()),
                "laterals": len(lo),
                "frontals_flagged": int((fo >= checker.threshold).sum()),
                "frontals": len(fo),
                "max_frontal_score": float(fo.max()),
                "min_lateral_score": float(lo.min()),
            }
        except ValueError as exc:
            entry["cross_validated"] = {"skipped": str(exc)}
        record["view_check"] = entry
    elif frontal_task:
        record["view_check"] = {
            "skipped": f"{lateral_n} lateral film(s) with a known view in the data"
            " (a manifest `view` column is needed)"
        }
    card = read_card(directory)
    card.params["scope"] = {
        **record,
        "detects": limits(task, predictor.labels)[0],
        "cannot_detect": limits(task, predictor.labels)[1],
        "cannot_tell_apart": look_alikes(task, predictor.labels),
    }
    save_card(directory, card)
    return {"model_dir": str(directory), **card.params["scope"]}


def _features(predictor, ds, mirrored: bool):
    """Penultimate features of every readable image (optionally mirrored), and their indices."""
    import numpy as np

    from medai.imaging.pipeline import readable_chunks

    feats, keep = [], []
    for pixels, idx, _errors in readable_chunks(ds, predictor.cfg.image_size):
        if not pixels:
            continue
        if mirrored:
            pixels = [np.ascontiguousarray(p[:, ::-1]) for p in pixels]
        feats.append(predictor.proba_and_features(pixels)[1])
        keep += idx
    return np.concatenate(feats), keep
