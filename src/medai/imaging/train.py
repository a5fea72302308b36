"""Train an imaging model: masked BCE (multi-label) or class-weighted CE (single-label).

Labels a source did not annotate (``nan`` targets) are masked out of the loss. Augmentation is
mild and anatomy-preserving (small rotations/scales/shifts, contrast; no left-right flip for
chest X-rays, where the heart's side matters). Early stopping on validation loss with the best
weights restored, resume from the last epoch, Accelerate for several processes/GPUs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from medai.imaging.datasets import ImageDataset, ImageRecord
from medai.imaging.io import load_image
from medai.imaging.labels import space
from medai.imaging.models import IMAGE_SIZE, ImagingNet, to_tensor

WEIGHTS_FILE = "model.safetensors"
LEGACY_WEIGHTS_FILE = "model.pt"
HF_BACKBONE_DIR = "backbone"


@dataclass
class ImagingTrainConfig:
    task: str
    backbone: str = "efficientnet-lite0"
    weights: str | None = None
    labels: list[str] = field(default_factory=list)  # the labels this model learns
    epochs: int = 10
    batch_size: int = 16
    learning_rate: float = 3e-4
    weight_decay: float = 1e-4
    patience: int = 3
    image_size: int = IMAGE_SIZE
    augment: bool = True
    augmentation: str = "standard"  # one of AUGMENTATIONS (used when ``augment``)
    mixed_precision: str = "auto"
    seed: int = 13
    # Fine-tuning recipe. ``trainable``: which part learns after the probe phase (``head`` =
    # linear probe on frozen features, ``top`` = last backbone stage + head, ``all``).
    # ``probe_epochs``: head-only epochs first (LP-FT, which keeps pretrained features from being
    # wrecked by a random head's early gradients). ``backbone_lr_scale``: backbone LR multiplier.
    trainable: str = "all"
    probe_epochs: int = 0
    backbone_lr_scale: float = 1.0


# Training-time augmentation strengths (``--augment``): random affine (rotation in radians, scale,
# translation as a fraction of the side), gamma contrast, and for ``strong`` Gaussian noise and
# blur, which mimic the exposure and resolution spread of films from other hospitals.
AUGMENTATIONS: dict[str, dict[str, float]] = {
    "standard": {"rotate": 0.12, "scale": 0.1, "translate": 0.06, "gamma_low": 0.8,
                 "gamma_high": 1.25, "noise_std": 0.0, "blur_prob": 0.0},
    "strong": {"rotate": 0.25, "scale": 0.2, "translate": 0.1, "gamma_low": 0.6,
               "gamma_high": 1.6, "noise_std": 0.03, "blur_prob": 0.3},
}


def augmentation(name: str) -> dict[str, float]:
    if name not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {name!r}: one of {', '.join(AUGMENTATIONS)}")
    return AUGMENTATIONS[name]


class ImageTensorDataset(Dataset):
    """Decodes each image once (small datasets fit in memory) and augments on the fly."""

    def __init__(self, records: list[ImageRecord], label_idx: list[int], size: int,
                 augment: bool, flip: bool, seed: int = 0, strength: str = "standard"
                 ) -> None:
        self.records, self.label_idx, self.size = records, label_idx, size
        self.augment, self.flip = augment, flip
        self._cache: dict[int, torch.Tensor] = {}
        self._aug = None
        if augment:
            from monai.transforms import (
                Compose,
                RandAdjustContrast,
                RandAffine,
                RandFlip,
                RandGaussianNoise,
                RandGaussianSmooth,
            )

            a = augmentation(strength)
            steps = [RandAffine(prob=0.8, rotate_range=a["rotate"], scale_range=a["scale"],
                                translate_range=(a["translate"] * size, a["translate"] * size),
                                padding_mode="zeros"),
                     RandAdjustContrast(prob=0.5, gamma=(a["gamma_low"], a["gamma_high"]))]
            if a["noise_std"]:
                steps.append(RandGaussianNoise(prob=0.5, std=a["noise_std"]))
            if a["blur_prob"]:
                steps.append(RandGaussianSmooth(prob=a["blur_prob"], sigma_x=(0.25, 1.0),
                                                sigma_y=(0.25, 1.0)))
            if flip:
                steps.append(RandFlip(prob=0.5, spatial_axis=1))
            # MONAI's random transforms keep their own random state: torch/accelerate seeding
            # does not reach them, so two runs with one seed differed (a flaky int8 test)
            self._aug = Compose(steps).set_random_state(seed=seed)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int):
        if i not in self._cache:
            self._cache[i] = to_tensor(load_image(self.records[i].path).pixels, self.size)
        x = self._cache[i]
        if self._aug is not None:
            x = torch.as_tensor(self._aug(x)).float().clamp(0, 1)
        t = torch.from_numpy(self.records[i].targets[self.label_idx].astype(np.float32))
        return x, t


def masked_bce(logits: torch.Tensor, targets: torch.Tensor, pos_weight: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of BCE over annotated entries and how many there were (for a true mean)."""
    mask = ~torch.isnan(targets)
    safe = torch.nan_to_num(targets, nan=0.0)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(
        logits.float(), safe, pos_weight=pos_weight, reduction="none")
    return (loss * mask).sum(), mask.sum()


def class_weighted_ce(logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    y = targets.argmax(dim=1)
    loss = torch.nn.functional.cross_entropy(logits.float(), y, weight=weight, reduction="sum")
    return loss, weight[y].sum()


def _loss_weights(targets: np.ndarray, multilabel: bool) -> torch.Tensor:
    if multilabel:
        pos = np.nansum(targets == 1, axis=0)
        neg = np.nansum(targets == 0, axis=0)
        return torch.tensor(np.clip(neg / np.maximum(pos, 1), 1.0, 50.0), dtype=torch.float32)
    from medai.core.training import balanced_class_weights

    return torch.tensor(balanced_class_weights(targets.argmax(1), targets.shape[1]),
                        dtype=torch.float32)


class ImagingAdapter:
    """The imaging task's part of the one training loop (``core.trainer``)."""

    def __init__(self, cfg: ImagingTrainConfig, train: ImageDataset, val: ImageDataset) -> None:
        self.cfg, self.train, self.val = cfg, train, val
        self.space = space(cfg.task)
        self.label_idx = [self.space.index(lab) for lab in cfg.labels]
        self.weights = _loss_weights(train.targets()[:, self.label_idx], self.space.multilabel)
        self.criterion = masked_bce if self.space.multilabel else class_weighted_ce

    def build(self) -> ImagingNet:
        model = ImagingNet(self.cfg.backbone, len(self.cfg.labels), weights=self.cfg.weights)
        model.set_trainable(self.cfg.trainable)  # the widest set, before DDP registers hooks
        return model

    def optimizer(self, model: ImagingNet):
        head, cfg = model.head_names(), self.cfg
        groups = [{"params": [p for n, p in model.named_parameters() if n.startswith(head)],
                   "lr": cfg.learning_rate},
                  {"params": [p for n, p in model.named_parameters()
                              if not n.startswith(head)],
                   "lr": cfg.learning_rate * cfg.backbone_lr_scale}]
        return torch.optim.AdamW([g for g in groups if g["params"]],
                                 weight_decay=cfg.weight_decay)

    def loaders(self):
        cfg = self.cfg
        train_ds = ImageTensorDataset(self.train.records, self.label_idx, cfg.image_size,
                                      cfg.augment, cfg.task != "cxr", seed=cfg.seed,
                                      strength=cfg.augmentation)
        val_ds = ImageTensorDataset(self.val.records, self.label_idx, cfg.image_size, False,
                                    False)
        # its own generator: the shuffle order depends on the seed alone, not on how much of
        # the global torch RNG model construction consumed
        return (DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=True,
                           generator=torch.Generator().manual_seed(cfg.seed)),
                DataLoader(val_ds, batch_size=cfg.batch_size * 2))

    def loss(self, model, batch):
        x, t = batch
        return self.criterion(model(x), t, self.weights.to(x.device))

    def validate(self, model, loader, acc) -> dict:
        val_loss, auroc = _evaluate(model, loader, self.criterion,
                                    self.weights.to(acc.device), acc, self.space.multilabel)
        return {"val_loss": val_loss, "val_macro_auroc": auroc}

    def on_epoch(self, model: ImagingNet, epoch: int) -> dict:
        """Linear probe first (head only), then the chosen part learns."""
        part = "head" if epoch <= self.cfg.probe_epochs else self.cfg.trainable
        model.set_trainable(part)
        return {"trainable": part}

    def save_best(self, model: ImagingNet, directory: Path) -> None:
        from safetensors.torch import save_model as save_safetensors

        save_safetensors(model, str(directory / WEIGHTS_FILE))

    def load_best(self, directory: Path) -> ImagingNet:
        from safetensors.torch import load_model as load_safetensors

        best = ImagingNet(self.cfg.backbone, len(self.cfg.labels), pretrained=False,
                          config_only=True)
        load_safetensors(best, str(directory / WEIGHTS_FILE))
        return best.eval()


def train_model(cfg: ImagingTrainConfig, train: ImageDataset, val: ImageDataset,
                work_dir: Path, resume: bool = False,
                cancel=None, progress=None) -> tuple[ImagingNet, list[dict]]:
    """Fit and return the model with its best weights and the per-epoch history."""
    from medai.core.trainer import LoopConfig, fit

    adapter = ImagingAdapter(cfg, train, val)
    loop = LoopConfig(epochs=cfg.epochs, patience=cfg.patience, seed=cfg.seed, resume=resume,
                      mixed_precision=cfg.mixed_precision, schedule="cosine",
                      clip_grad_norm=1.0, grad_accum=1,
                      find_unused_parameters=cfg.trainable != "all" or cfg.probe_epochs > 0)
    return fit(adapter, loop, work_dir, cancel=cancel, on_epoch=adapter.on_epoch,
               progress=progress)


def _evaluate(model, loader, criterion, weights, acc, multilabel: bool
              ) -> tuple[float, float | None]:
    """Validation loss (the early-stopping signal) and macro AUROC (for the curves)."""
    from sklearn.metrics import roc_auc_score

    model.eval()
    total = torch.zeros(2, device=acc.device)
    outs, golds = [], []
    with torch.no_grad():
        for x, t in loader:
            logits = model(x)
            loss_sum, n = criterion(logits, t, weights)
            total += torch.stack([loss_sum.detach().float(), n.detach().float()])
            logits, t = acc.gather_for_metrics((logits.float(), t))
            outs.append(logits.cpu())
            golds.append(t.cpu())
    total = acc.reduce(total, "sum")
    scores = torch.cat(outs)
    scores = (torch.sigmoid(scores) if multilabel else torch.softmax(scores, 1)).numpy()
    gold = torch.cat(golds).numpy()
    aucs = []
    for j in range(gold.shape[1]):
        mask = ~np.isnan(gold[:, j])
        if len(np.unique(gold[mask, j])) == 2:
            aucs.append(roc_auc_score(gold[mask, j], scores[mask, j]))
    return float(total[0] / total[1].clamp(min=1)), float(np.mean(aucs)) if aucs else None


def save_model(model: ImagingNet, cfg: ImagingTrainConfig, directory: Path) -> None:
    """Weights as safetensors and the config, self-contained: a Hugging Face backbone's
    ``config.json`` is copied into ``backbone/`` and referred to relatively, so the directory
    loads the same after it is moved or copied to another machine."""
    from dataclasses import replace

    from safetensors.torch import save_model as save_safetensors

    directory.mkdir(parents=True, exist_ok=True)
    save_safetensors(model, str(directory / WEIGHTS_FILE))
    (directory / LEGACY_WEIGHTS_FILE).unlink(missing_ok=True)
    if model.backbone_name.startswith("hf:"):
        model.net.config.save_pretrained(directory / HF_BACKBONE_DIR)
        cfg = replace(cfg, backbone=f"hf:{HF_BACKBONE_DIR}", weights=None)
    (directory / "imaging_config.json").write_text(json.dumps(asdict(cfg), indent=2))


def load_model(directory: Path) -> tuple[ImagingNet, ImagingTrainConfig]:
    cfg = ImagingTrainConfig(**json.loads((directory / "imaging_config.json").read_text()))
    backbone = cfg.backbone
    if backbone == f"hf:{HF_BACKBONE_DIR}":  # saved with the model: resolve inside it
        backbone = f"hf:{directory / HF_BACKBONE_DIR}"
    model = ImagingNet(backbone, len(cfg.labels), pretrained=False, config_only=True)
    if (directory / WEIGHTS_FILE).is_file():
        from safetensors.torch import load_model as load_safetensors

        load_safetensors(model, str(directory / WEIGHTS_FILE))
    else:  # directories saved before safetensors
        model.load_state_dict(torch.load(directory / LEGACY_WEIGHTS_FILE, map_location="cpu",
                                         weights_only=True))
    return model.eval(), cfg
