"""Imaging prediction: findings with probabilities and each label's operating threshold.

The modality gate runs first: a colour photo, or a DICOM of another modality, is refused with
the reason instead of findings. Probabilities are sigmoid (multi-label findings) or softmax
(one tumour class). Output is always an AI suggestion for a radiologist.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from medai.core.model_dir import ModelCard, ModelLoadError, model_identity
from medai.imaging.decision import Decision, decide
from medai.imaging.export import ONNX_FILE, OnnxModel, onnx_is_current
from medai.imaging.gate import FeatureGate, check_modality
from medai.imaging.io import LoadedImage, Refusal, load_image
from medai.imaging.labels import space
from medai.imaging.networks import to_tensor
from medai.imaging.operating import load_policy, load_series_rule
from medai.imaging.results import Finding, ImageInfo, ImagingResult
from medai.imaging.scope import OutOfScope, OutOfScopeDetector, Scope, scope_of
from medai.imaging.train import ImagingTrainConfig, load_model
from medai.imaging.views import ViewCheck, ViewChecker, view_of


class ImagingPredictor:
    def __init__(
        self, model, cfg: ImagingTrainConfig, card: ModelCard, directory: Path | None = None
    ) -> None:
        self.model, self.cfg, self.card, self.directory = model, cfg, card, directory
        self.torch_model = model  # kept when ``model`` is swapped for an ONNX Runtime one
        self.gate = FeatureGate.load(directory) if directory else None
        if self.gate is not None and hasattr(model, "logits_and_features"):
            with torch.no_grad():
                dim = model.logits_and_features(torch.zeros(1, 1, 32, 32))[1].shape[1]
            if dim != self.gate.mean.shape[0]:
                import warnings

                warnings.warn(
                    f"{directory}: gate.npz was fitted on other features "
                    f"({self.gate.mean.shape[0]} vs {dim}); it is ignored — refit it "
                    "with `medai imaging fit-gate`",
                    stacklevel=2,
                )
                self.gate = None
        self.labels = list(cfg.labels)
        # the task's definition, resolved once: every read asks it (labels, views, modality)
        self.space = space(cfg.task)
        self.multilabel = self.space.multilabel
        self.policy = load_policy(directory, card, self.labels)
        self.thresholds = {lab: self.policy.thresholds[lab] for lab in self.labels}
        # how a series' slices become one decision (``imaging.series``), None: the default
        self.series_rule = load_series_rule(directory)
        # scope (``imaging.scope``, ``imaging.views``): the out-of-scope flag on the gate's
        # distance, and for a task read from frontal films the image's view check
        self.out_of_scope = OutOfScopeDetector.load(directory) if self.gate is not None else None
        self.view_check = ViewChecker.load(directory) if self.space.dicom_views else None
        gate_dim = None if self.gate is None else self.gate.mean.shape[0]
        if self.view_check is not None and gate_dim and self.view_check.dim != gate_dim:
            import warnings

            warnings.warn(
                f"{directory}: view_check.npz was fitted on other features; it is ignored "
                "— refit it with `medai imaging fit-scope`",
                stacklevel=2,
            )
            self.view_check = None
        self.runtime = "torch"
        self.identity = model_identity(directory, card)

    def _activate(self, logits: np.ndarray) -> np.ndarray:
        if self.multilabel:
            return 1.0 / (1.0 + np.exp(-logits))
        z = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def logits_and_features(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            logits, feats = self.model.logits_and_features(batch)
            if feats is None or (
                self.gate is not None and feats.shape[1] != self.gate.mean.shape[0]
            ):
                # an ONNX file exported before the gate (or with other features)
                feats = self.torch_model.logits_and_features(batch)[1]
        return logits.float().cpu().numpy(), feats.float().cpu().numpy()

    def proba_and_features(
        self, images: Sequence[np.ndarray], batch_size: int = 32
    ) -> tuple[np.ndarray, np.ndarray]:
        probs, feats = [], []
        for i in range(0, len(images), batch_size):
            batch = torch.stack(
                [to_tensor(p, self.cfg.image_size) for p in images[i : i + batch_size]]
            )
            logits, f = self.logits_and_features(batch)
            probs.append(self._activate(logits))
            feats.append(f)
        if not probs:
            return np.zeros((0, len(self.labels))), np.zeros((0, 0))
        return np.concatenate(probs), np.concatenate(feats)

    def predict_proba_pixels(
        self, images: Sequence[np.ndarray], batch_size: int = 32
    ) -> np.ndarray:
        return self.proba_and_features(images, batch_size)[0]

    def refusal_reason(
        self, image: LoadedImage, features: np.ndarray | None = None
    ) -> Refusal | None:
        """Why this image must not get findings from this model, or None.

        Rules first (colour photo, DICOM of another modality), then the learned gate, then
        the view (a lateral chest film, ``view_refusal``)."""
        reason = check_modality(image, self.space)
        if reason:
            return reason
        if self.gate is None:
            return self.view_refusal(image, features)
        if features is None:
            features = self.proba_and_features([image.pixels])[1]
        distance = float(self.gate.distance(features)[0])
        if distance > self.gate.threshold:
            expected = self.space.modality
            return Refusal(
                "out_of_distribution",
                f"this image does not look like the {expected} images this model "
                f"was trained on (distance {distance:.1f} > "
                f"{self.gate.threshold:.1f}); is it another modality or body part?",
                {"distance": round(distance, 2), "limit": round(float(self.gate.threshold), 2)},
            )
        return self.view_refusal(image, features)

    def view(self, image: LoadedImage, features: np.ndarray | None = None) -> ViewCheck:
        """The film's view (``imaging.views.view_of``): its header's, else this model's image
        check on its features, else unknown. Only a task read from frontal films has views."""
        if not self.space.dicom_views:
            return ViewCheck("unknown", "image")
        if self.view_check is not None and features is None and view_of(image).source != "header":
            features = self.proba_and_features([image.pixels])[1]
        return view_of(image, self.view_check, features)

    def view_refusal(
        self, image: LoadedImage, features: np.ndarray | None = None
    ) -> Refusal | None:
        """A lateral chest film is refused, never read as a frontal: the model was trained
        and its operating points chosen on frontal films (``imaging.views``)."""
        check = self.view(image, features)
        if check.view != "lateral":
            return None
        said = check.detail or (
            f"image check {check.score:.2f} >= {check.threshold:.2f}"
            if check.score is not None and check.threshold is not None
            else "lateral"
        )
        return Refusal(
            "lateral_view",
            f"this is a lateral film ({said}); the {self.space.modality} model "
            "reads frontal (PA/AP) films only",
            {"source": check.source, **({"score": round(check.score, 3)} if check.score else {})},
        )

    def scope(
        self,
        image: LoadedImage | None = None,
        features: np.ndarray | None = None,
        refusal: Refusal | None = None,
    ) -> Scope:
        """What this model detects and cannot, and whether ``image`` is out of its scope
        (``imaging.scope``): a refusal is out of scope for its own reason; otherwise the
        detector's flag on the gate's distance (not flagged, and no detector named, for a model
        without one)."""
        view = None
        if image is not None and self.space.dicom_views:
            view = self.view(image, features).as_dict()
        distance = None
        if self.gate is not None and features is not None:
            distance = float(self.gate.distance(features)[0])
        if refusal is not None:
            code = {"out_of_distribution": "unlike_training"}.get(refusal.code, refusal.code)
            judged = OutOfScope(flagged=True, reason=code, detector="refusal")
            if (
                refusal.code == "out_of_distribution"
                and distance is not None
                and self.gate is not None  # always, when there is a distance
            ):
                judged.score = round(distance, 4)
                judged.threshold = round(float(self.gate.threshold), 4)
                judged.detector = "feature_distance"
            elif refusal.code == "lateral_view" and view and view.get("score") is not None:
                judged.score, judged.threshold = view["score"], view["threshold"]
                judged.detector = "view_check"
            elif refusal.code == "lateral_view":
                judged.detector = "header"
        elif self.out_of_scope is not None and distance is not None:
            judged = self.out_of_scope.judge(distance)
        else:
            judged = OutOfScope(score=None if distance is None else round(distance, 4))
        return scope_of(self.space, self.labels, judged, view)

    def predict(self, source: str | Path | bytes | LoadedImage) -> ImagingResult:
        """Findings for one image; ``status: refused`` with the reason when the image is of the
        wrong kind. Raises ``ImageInputError`` when it cannot be read at all."""
        image = source if isinstance(source, LoadedImage) else load_image(source)
        probs, feats = self.proba_and_features([image.pixels])
        reason = self.refusal_reason(image, feats)
        if reason:
            return self._refusal(reason, image, self.scope(image, feats, reason))
        decision = self.decide(probs[0])
        findings = [Finding(**row.model_dump()) for row in decision.labels]
        embedding = [float(f"{v:.6g}") for v in self.embedding(feats)[0]]
        return ImagingResult(
            status="ai_suggestion",
            task=self.cfg.task,
            refused=False,
            findings=findings,
            primary=decision.primary,
            decision=decision,
            model=self.identity,
            image=image_info(image),
            scope=self.scope(image, feats),
            embedding=embedding,
        )

    def embedding(self, feats: np.ndarray, n: int = 8) -> np.ndarray:
        """A small embedding of the penultimate features for drift monitoring: the gate's
        first whitened principal axes, or (no gate) a fixed random projection — the two-sample
        test monitoring runs on it is affine-invariant, so either serves."""
        if self.gate is not None:
            return self.gate.coordinates(feats, n)
        feats = np.asarray(feats, dtype=np.float32)
        axes = np.random.default_rng(feats.shape[1]).standard_normal((feats.shape[1], n))
        return feats @ (axes / np.sqrt(feats.shape[1])).astype(np.float32)

    def decide(self, probs: np.ndarray) -> Decision:
        """The task's one decision for a row of probabilities (``imaging.decision``)."""
        return decide(
            self.space,
            dict(zip(self.labels, map(float, probs), strict=True)),
            self.policy,
        )

    def _refusal(
        self, reason: Refusal, image: LoadedImage, scope: Scope | None = None
    ) -> ImagingResult:
        return ImagingResult(
            status="refused",
            task=self.cfg.task,
            refused=True,
            reason=reason.message,
            reason_code=reason.code,
            reason_params=reason.params,
            model=self.identity,
            image=image_info(image),
            scope=scope or self.scope(refusal=reason),
        )


def image_info(image: LoadedImage) -> ImageInfo:
    h, w = image.pixels.shape
    meta = image.metadata
    return ImageInfo(
        format=image.source_format,
        width=int(w),
        height=int(h),
        original_width=meta.get("width"),
        original_height=meta.get("height"),
        frames=int(meta.get("frames", 1) or 1),
        modality=meta.get("modality") or None,
        view_position=meta.get("view_position") or None,
    )


RUNTIMES = ("auto", "onnx", "torch")


def load_predictor(
    directory: Path, card: ModelCard, runtime: str = "auto", threads: int | None = None
) -> ImagingPredictor:
    """Registry hook for ``cxr`` / ``mri`` model directories.

    ``runtime``: ``auto`` serves the directory's ``model.onnx`` with ONNX Runtime when it was
    exported from these very weights (else eager PyTorch), ``onnx`` requires it, ``torch``
    never uses it. Loading never writes into the model directory (export is a command)."""

    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose one of {RUNTIMES}")
    model, cfg = load_model(directory)
    if list(cfg.labels) != list(card.labels):  # two copies must never silently disagree
        raise ModelLoadError(
            f"{directory}: imaging_config.json and the model card list "
            f"different labels ({cfg.labels} vs {card.labels})"
        )
    predictor = ImagingPredictor(model, cfg, card, directory)
    if runtime != "torch":
        current = onnx_is_current(directory)
        if current:
            predictor.model = OnnxModel(directory / ONNX_FILE, threads=threads)
        elif runtime == "onnx":
            raise ModelLoadError(
                f"{directory}: no {ONNX_FILE} exported from these weights; "
                f"create it with `medai imaging export --model {directory}`"
            )
    predictor.runtime = "onnx" if predictor.model is not model else "torch"
    return predictor
