"""Train an imaging model: masked BCE (multi-label) or class-weighted CE (single-label).

Labels a source did not annotate (``nan`` targets) are masked out of the loss. Augmentation is
mild and anatomy-preserving (small rotations/scales/shifts, contrast; a left-right flip only
for a task that allows it, ``Task.flip_augment``: not chest X-rays, where the heart's side
matters). Early stopping on validation loss with the best
weights restored, resume from the last epoch, Accelerate for several processes/GPUs.

Images stream from disk: decoded in DataLoader workers when a batch needs them, never held in
memory (a hospital's 100,000 images would not fit; ``cache_dir`` keeps them decoded and resized
on disk instead, ``imaging.decode_cache``), with augmentation that is a function of
(seed, epoch, index) so the number of workers does not change what the model sees. An image
that cannot be read is skipped and counted per epoch (``unreadable_images``), not a crash.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from medai.core.trainer import LoopConfig, adamw, balanced_class_weights, default_workers, fit
from medai.imaging.datasets import ImageDataset, RecordTable
from medai.imaging.decode_cache import DecodedCache
from medai.imaging.io import ImageInputError, load_image
from medai.imaging.labels import space
from medai.imaging.networks import IMAGE_SIZE, MIN_IMAGE_SIZE, ImagingNet, to_tensor

WEIGHTS_FILE = "model.safetensors"
# options of one training run, never of the model it makes: left out of imaging_config.json
# (a local folder would change the sealed directory's hash, and a release that does not know
# the field could not load the model)
RUN_ONLY = ("cache_dir",)
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
    # Throughput only (results do not depend on them): DataLoader worker processes per training
    # process, and channels-last model/inputs on CUDA.
    num_workers: int = field(default_factory=default_workers)
    channels_last: bool = True
    # a folder for decoded, resized images (``imaging.decode_cache``): every epoch after the
    # first reads them instead of decoding the films again; None decodes every epoch. Values
    # are stored to 1.5e-5 (uint16), so a cached run differs from an uncached one by that.
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if self.image_size < MIN_IMAGE_SIZE:
            raise ValueError(
                f"image_size {self.image_size} is too small: at least {MIN_IMAGE_SIZE} pixels"
            )


# Training-time augmentation strengths (``--augment``): random affine (rotation in radians, scale,
# translation as a fraction of the side), gamma contrast, and for ``strong`` Gaussian noise and
# blur, which mimic the exposure and resolution spread of films from other hospitals.
AUGMENTATIONS: dict[str, dict[str, float]] = {
    "standard": {
        "rotate": 0.12,
        "scale": 0.1,
        "translate": 0.06,
        "gamma_low": 0.8,
        "gamma_high": 1.25,
        "noise_std": 0.0,
        "blur_prob": 0.0,
    },
    "strong": {
        "rotate": 0.25,
        "scale": 0.2,
        "translate": 0.1,
        "gamma_low": 0.6,
        "gamma_high": 1.6,
        "noise_std": 0.03,
        "blur_prob": 0.3,
    },
}


def augmentation(name: str) -> dict[str, float]:
    if name not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {name!r}: one of {', '.join(AUGMENTATIONS)}")
    return AUGMENTATIONS[name]


def item_random_state(seed: int, epoch: int, index: int) -> np.random.RandomState:
    """The random state of one item's augmentation: a function of (seed, epoch, index) alone,
    so an item looks the same whichever DataLoader worker (or none) makes it, and a resumed
    run repeats the interrupted epoch exactly."""
    return np.random.RandomState([seed & 0xFFFFFFFF, epoch, index])


class StreamedImages(Dataset):
    """Decodes an image only when the loader asks for it (never held in memory: 100,000
    decoded images would take 20 GB; with a ``DecodedCache``, read back from disk after the
    first time) and augments it with a random state derived from (seed, epoch, index).

    An image that cannot be read returns ``None``; ``SkipUnreadable`` drops it from the batch
    and counts it, so one bad file costs one image, not the run. The training loop calls
    ``set_epoch`` before each epoch's iterator starts, so its fresh workers see it."""

    def __init__(
        self,
        records: RecordTable,
        label_idx: list[int],
        size: int,
        augment: bool,
        flip: bool,
        seed: int = 0,
        strength: str = "standard",
        cache: DecodedCache | None = None,
    ) -> None:
        self.records, self.size, self.seed = records, size, int(seed)
        self.cache = cache
        self.targets = np.ascontiguousarray(records.targets[:, label_idx], dtype=np.float32)
        self.augment, self.flip, self.epoch = augment, flip, 0
        self._aug = None
        self._random: list = []
        if augment:
            from monai.transforms import (
                Compose,
                RandAdjustContrast,
                RandAffine,
                RandFlip,
                RandGaussianNoise,
                RandGaussianSmooth,
                Randomizable,
            )

            a = augmentation(strength)
            steps = [
                RandAffine(
                    prob=0.8,
                    rotate_range=a["rotate"],
                    scale_range=a["scale"],
                    translate_range=(a["translate"] * size, a["translate"] * size),
                    padding_mode="zeros",
                ),
                RandAdjustContrast(prob=0.5, gamma=(a["gamma_low"], a["gamma_high"])),
            ]
            if a["noise_std"]:
                steps.append(RandGaussianNoise(prob=0.5, std=a["noise_std"]))
            if a["blur_prob"]:
                steps.append(
                    RandGaussianSmooth(
                        prob=a["blur_prob"], sigma_x=(0.25, 1.0), sigma_y=(0.25, 1.0)
                    )
                )
            if flip:
                steps.append(RandFlip(prob=0.5, spatial_axis=1))
            self._aug = Compose(steps)
            # MONAI's random transforms keep their own random state, which torch/accelerate
            # seeding does not reach; each item sets it (``item_random_state``)
            self._random = [t for t in steps if isinstance(t, Randomizable)]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.records)

    def _decoded(self, i: int) -> torch.Tensor | None:
        path = self.records.path(i)
        cached, place = self.cache.lookup(path) if self.cache is not None else (None, None)
        if cached is not None:
            return torch.from_numpy(cached)
        try:
            x = to_tensor(load_image(path).pixels, self.size)
        except (ImageInputError, OSError):
            return None
        # one stat of the file per item: its key was taken before it was decoded
        return x if self.cache is None else torch.from_numpy(self.cache.store(place, x.numpy()))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        x = self._decoded(i)
        if x is None:
            return None
        if self._aug is not None:
            state = item_random_state(self.seed, self.epoch, int(i))
            for t in self._random:
                t.set_random_state(state=state)
            y = self._aug(x)
            x = (
                (y.as_tensor() if hasattr(y, "as_tensor") else torch.as_tensor(y))
                .float()
                .clamp(0, 1)
            )
        return x, torch.from_numpy(self.targets[i].copy())


class ImageBatch(NamedTuple):
    x: torch.Tensor  # B × 1 × size × size
    targets: torch.Tensor  # B × labels (nan: not annotated)
    skipped: int  # unreadable images dropped from this batch
    images: int  # real images in ``x`` (0: a blank stand-in, see ``SkipUnreadable``)


class SkipUnreadable:
    """Collate that drops unreadable items (``None``) and counts them. A batch with nothing
    readable becomes two blank images (batch norm needs more than one value per channel) whose
    targets are all ``nan``: they add nothing to the loss or the metrics, and every process
    still runs a forward and backward pass (DDP keeps step)."""

    def __init__(self, size: int, n_labels: int) -> None:
        self.size, self.n_labels = size, n_labels

    def __call__(self, items: list[tuple[torch.Tensor, torch.Tensor] | None]) -> ImageBatch:
        kept = [item for item in items if item is not None]
        skipped = len(items) - len(kept)
        if not kept:
            return ImageBatch(
                torch.zeros(2, 1, self.size, self.size),
                torch.full((2, self.n_labels), float("nan")),
                skipped,
                0,
            )
        return ImageBatch(
            torch.stack([x for x, _ in kept]), torch.stack([t for _, t in kept]), skipped, len(kept)
        )


def masked_bce(
    logits: torch.Tensor, targets: torch.Tensor, pos_weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of BCE over annotated entries and how many there were (for a true mean)."""
    mask = ~torch.isnan(targets)
    safe = torch.nan_to_num(targets, nan=0.0)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(
        logits.float(), safe, pos_weight=pos_weight, reduction="none"
    )
    return (loss * mask).sum(), mask.sum()


def class_weighted_ce(
    logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of class-weighted CE and the weight total; a row of ``nan`` targets (a blank
    stand-in for an unreadable batch) counts for nothing."""
    valid = ~torch.isnan(targets).any(dim=1)
    y = torch.nan_to_num(targets, nan=0.0).argmax(dim=1)
    loss = torch.nn.functional.cross_entropy(logits.float(), y, weight=weight, reduction="none")
    return (loss * valid).sum(), (weight[y] * valid).sum()


def _loss_weights(targets: np.ndarray, multilabel: bool) -> torch.Tensor:
    if multilabel:
        pos = np.nansum(targets == 1, axis=0)
        neg = np.nansum(targets == 0, axis=0)
        return torch.tensor(np.clip(neg / np.maximum(pos, 1), 1.0, 50.0), dtype=torch.float32)

    return torch.tensor(
        balanced_class_weights(targets.argmax(1), targets.shape[1]), dtype=torch.float32
    )


class ImagingAdapter:
    """The imaging task's part of the one training loop (``core.trainer``).

    For a GPU: images are decoded and augmented in DataLoader worker processes
    (``num_workers``, fresh each epoch so they see ``set_epoch``) into pinned memory; the model
    and its inputs are channels-last on CUDA (the layout tensor cores want); mixed precision
    comes from the loop. ``batch_samples`` lets the loop print images per second."""

    throughput_unit = "images"

    def __init__(self, cfg: ImagingTrainConfig, train: ImageDataset, val: ImageDataset) -> None:
        self.cfg, self.train, self.val = cfg, train, val
        self.space = space(cfg.task)
        self.label_idx = [self.space.index(lab) for lab in cfg.labels]
        self.weights = _loss_weights(train.targets()[:, self.label_idx], self.space.multilabel)
        self.criterion = masked_bce if self.space.multilabel else class_weighted_ce
        self.channels_last = cfg.channels_last and torch.cuda.is_available()
        self.unreadable = 0  # training images skipped this epoch by this process

    def build(self) -> ImagingNet:
        model = ImagingNet(self.cfg.backbone, len(self.cfg.labels), weights=self.cfg.weights)
        model.set_trainable(self.cfg.trainable)  # the widest set, before DDP registers hooks
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if torch.cuda.is_available():
            torch.backends.cudnn.benchmark = True  # one input size: autotuned conv kernels
        return model

    def weights_on(self, device: torch.device) -> torch.Tensor:
        """The loss weights on ``device``, copied once: a copy from pageable host memory each
        step would make the host wait for the GPU every batch."""
        if self.weights.device != device:
            self.weights = self.weights.to(device)
        return self.weights

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def loader_options(self) -> dict:
        """DataLoader settings shared by the training and validation loaders."""
        workers = max(0, int(self.cfg.num_workers))
        options = {
            "num_workers": workers,
            "pin_memory": torch.cuda.is_available(),
            "persistent_workers": False,  # fresh workers each epoch see set_epoch
            "collate_fn": SkipUnreadable(self.cfg.image_size, len(self.label_idx)),
        }
        if workers:
            options["prefetch_factor"] = 2
        return options

    def batch_samples(self, batch: ImageBatch) -> int:
        """Images in a batch (the loop's images/s)."""
        return int(batch[3])

    def optimizer(self, model: ImagingNet):
        head, cfg = model.head_names(), self.cfg
        groups = [
            {
                "params": [p for n, p in model.named_parameters() if n.startswith(head)],
                "lr": cfg.learning_rate,
            },
            {
                "params": [p for n, p in model.named_parameters() if not n.startswith(head)],
                "lr": cfg.learning_rate * cfg.backbone_lr_scale,
            },
        ]
        return adamw([g for g in groups if g["params"]], weight_decay=cfg.weight_decay)

    def loaders(self) -> tuple[DataLoader, DataLoader]:
        cfg = self.cfg
        cache = DecodedCache(cfg.cache_dir, cfg.image_size) if cfg.cache_dir else None
        train_ds = StreamedImages(
            self.train.records,
            self.label_idx,
            cfg.image_size,
            cfg.augment,
            self.space.flip_augment,  # the task's own: no flip where the side matters
            seed=cfg.seed,
            strength=cfg.augmentation,
            cache=cache,
        )
        val_ds = StreamedImages(
            self.val.records, self.label_idx, cfg.image_size, False, False, cache=cache
        )
        # no generator of our own: the loop's seedable sampler orders each epoch by
        # (seed, epoch), and the loop tells the dataset the epoch (its augmentation), which a
        # resumed run repeats
        return (
            DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=True, **self.loader_options()),
            DataLoader(val_ds, batch_size=cfg.batch_size * 2, **self.loader_options()),
        )

    def loss(self, model, batch: ImageBatch):
        x, t, skipped, _ = batch
        self.unreadable += int(skipped)
        return self.criterion(model(self.inputs(x)), t, self.weights_on(x.device))

    def validate(self, model, loader, acc) -> dict:
        val_loss, auroc, skipped = _evaluate(
            model,
            loader,
            self.criterion,
            self.weights_on(acc.device),
            acc,
            self.space.multilabel,
            self.inputs,
        )
        counts = acc.reduce(
            torch.tensor([self.unreadable, skipped], dtype=torch.int64, device=acc.device), "sum"
        )
        self.unreadable = 0
        return {
            "val_loss": val_loss,
            "val_macro_auroc": auroc,
            "unreadable_images": int(counts.sum()),
        }

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

        best = ImagingNet(
            self.cfg.backbone, len(self.cfg.labels), pretrained=False, config_only=True
        )
        load_safetensors(best, str(directory / WEIGHTS_FILE))
        return best.eval()


def train_model(
    cfg: ImagingTrainConfig,
    train: ImageDataset,
    val: ImageDataset,
    work_dir: Path,
    resume: bool = False,
    cancel=None,
    progress=None,
) -> tuple[ImagingNet, list[dict]]:
    """Fit and return the model with its best weights and the per-epoch history."""

    adapter = ImagingAdapter(cfg, train, val)
    loop = LoopConfig(
        epochs=cfg.epochs,
        patience=cfg.patience,
        seed=cfg.seed,
        resume=resume,
        mixed_precision=cfg.mixed_precision,
        schedule="cosine",
        clip_grad_norm=1.0,
        grad_accum=1,
        find_unused_parameters=cfg.trainable != "all" or cfg.probe_epochs > 0,
    )
    return fit(adapter, loop, work_dir, cancel=cancel, on_epoch=adapter.on_epoch, progress=progress)


def _evaluate(
    model,
    loader,
    criterion,
    weights,
    acc,
    multilabel: bool,
    inputs: Callable[[torch.Tensor], torch.Tensor] = lambda x: x,
) -> tuple[float, float | None, int]:
    """Validation loss (the early-stopping signal), macro AUROC (for the curves) and how many
    images could not be read."""
    from sklearn.metrics import roc_auc_score

    model.eval()
    total = torch.zeros(2, device=acc.device)
    outs, golds, skipped = [], [], 0
    with torch.no_grad():
        for x, t, unreadable, _ in loader:
            skipped += int(unreadable)
            logits = model(inputs(x))
            loss_sum, n = criterion(logits, t, weights)
            total += torch.stack([loss_sum.detach().float(), n.detach().float()])
            logits, t = acc.gather_for_metrics((logits.float(), t))
            outs.append(logits.cpu())
            golds.append(t.cpu())
    total = acc.reduce(total, "sum")
    logits_all = torch.cat(outs)
    scores = (torch.sigmoid(logits_all) if multilabel else torch.softmax(logits_all, 1)).numpy()
    gold = torch.cat(golds).numpy()
    aucs = []
    for j in range(gold.shape[1]):
        mask = ~np.isnan(gold[:, j])
        if len(np.unique(gold[mask, j])) == 2:
            aucs.append(roc_auc_score(gold[mask, j], scores[mask, j]))
    return (
        float(total[0] / total[1].clamp(min=1)),
        float(np.mean(aucs)) if aucs else None,
        skipped,
    )


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
    saved = {k: v for k, v in asdict(cfg).items() if k not in RUN_ONLY}
    (directory / "imaging_config.json").write_text(json.dumps(saved, indent=2))


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
        model.load_state_dict(
            torch.load(directory / LEGACY_WEIGHTS_FILE, map_location="cpu", weights_only=True)
        )
    return model.eval(), cfg
