"""Fine-tune any local Hugging Face encoder (BioBERTurk, BERTurk, …) for department triage.

The reference recipe: class-weighted cross-entropy, AdamW with linear warm-up/decay, gradient
accumulation, early stopping on validation loss with the best checkpoint restored, bf16 (or
fp16) on GPU, resumable from the last epoch. Runs on one or several processes/GPUs through
Hugging Face Accelerate: start it with ``medai triage train --num-processes N`` or
``accelerate launch -m medai.cli triage train ...``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from medai.core.trainer import LoopConfig, adamw, auto_mixed_precision, balanced_class_weights, fit
from medai.triage.classifiers.base import label_index, sorted_classes

if TYPE_CHECKING:
    import torch

HF_SUBDIR = "hf"
PARAMS_FILE = "transformer_params.json"


class _Encoded:
    def __init__(self, enc: dict, labels: np.ndarray | None) -> None:
        self.enc, self.labels = enc, labels

    def __len__(self) -> int:
        return len(self.enc["input_ids"])

    def __getitem__(self, i: int) -> dict:
        item = {k: v[i] for k, v in self.enc.items()}
        if self.labels is not None:
            item["labels"] = int(self.labels[i])
        return item


class TransformerClassifier:
    model_type = "transformer"

    def __init__(
        self,
        base: str | Path | None = None,
        work_dir: str | Path | None = None,
        epochs: int = 4,
        batch_size: int = 16,
        learning_rate: float = 3e-5,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.1,
        grad_accum: int = 1,
        patience: int = 2,
        max_length: int = 256,
        mixed_precision: str = "auto",
        resume: bool = False,
        seed: int = 13,
    ) -> None:
        self.params: dict[str, Any] = {
            "base": str(base) if base else None,
            "epochs": epochs,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "weight_decay": weight_decay,
            "warmup_ratio": warmup_ratio,
            "grad_accum": grad_accum,
            "patience": patience,
            "max_length": max_length,
            "mixed_precision": mixed_precision,
            "seed": seed,
        }
        self.work_dir = Path(work_dir) if work_dir else None
        self.resume = resume
        self.labels: list[str] = []
        self.history: list[dict] = []
        # a transformers model and tokenizer (loosely typed), None until built or loaded
        self._model: Any = None
        self._tokenizer: Any = None
        self._best_dir: Path | None = None
        self.train_info: dict = {}

    # -- training ---------------------------------------------------------------------------
    def _loader(self, texts, labels, shuffle: bool, batch_size: int):
        from torch.utils.data import DataLoader, Dataset
        from transformers import DataCollatorWithPadding

        enc = self._tokenizer(list(texts), truncation=True, max_length=self.params["max_length"])
        return DataLoader(
            # a map-style dataset: DataLoader needs only its __len__ and __getitem__
            cast(Dataset, _Encoded(dict(enc), labels)),
            batch_size=batch_size,
            shuffle=shuffle,
            collate_fn=DataCollatorWithPadding(self._tokenizer),
        )

    def fit(
        self,
        train_texts: Sequence[str],
        train_labels: Sequence[str],
        val_texts: Sequence[str],
        val_labels: Sequence[str],
        cancel=None,
    ) -> None:
        """Fine-tune with the one training loop (``core.trainer``): class-weighted cross
        entropy, linear warm-up schedule, clipping, early stopping on validation loss."""

        p = self.params
        if not p["base"]:
            raise ValueError("the transformer model type needs --base DIR (a local HF model)")
        base = Path(p["base"])
        if not (base / "config.json").is_file():
            raise FileNotFoundError(f"{base}: not a Hugging Face model directory (no config.json)")
        if self.work_dir is None:
            raise ValueError("work_dir is required to keep checkpoints")
        self.labels = sorted_classes(train_labels)
        keep = [i for i, lab in enumerate(val_labels) if lab in set(self.labels)]
        adapter = _TransformerAdapter(
            self,
            base,
            list(train_texts),
            label_index(train_labels, self.labels),
            [val_texts[i] for i in keep],
            label_index([val_labels[i] for i in keep], self.labels),
        )
        mp = auto_mixed_precision() if p["mixed_precision"] == "auto" else p["mixed_precision"]
        loop = LoopConfig(
            epochs=p["epochs"],
            patience=p["patience"],
            grad_accum=p["grad_accum"],
            clip_grad_norm=1.0,
            mixed_precision=mp,
            seed=p["seed"],
            resume=self.resume,
            schedule="linear_warmup",
            warmup_ratio=p["warmup_ratio"],
        )
        self._best_dir, self.history = fit(adapter, loop, self.work_dir, cancel=cancel)
        from accelerate import PartialState

        state = PartialState()
        self.train_info = {
            "num_processes": state.num_processes,
            "mixed_precision": mp,
            "device": str(state.device),
        }
        self._model = None  # predictions use the restored best checkpoint

    @staticmethod
    def _validate(model, val_dl, loss_fn, acc) -> tuple[float, np.ndarray, np.ndarray]:
        import torch

        model.eval()
        losses, preds, golds = [], [], []
        with torch.no_grad():
            for batch in val_dl:
                labels = batch.pop("labels")
                logits = model(**batch).logits.float()
                logits, labels = acc.gather_for_metrics((logits, labels))
                losses.append(
                    torch.nn.functional.cross_entropy(
                        logits, labels, weight=loss_fn.weight, reduction="none"
                    ).cpu()
                )
                preds.append(logits.argmax(-1).cpu())
                golds.append(labels.cpu())
        gold = torch.cat(golds)
        weight = loss_fn.weight.cpu()[gold]
        val_loss = float(torch.cat(losses).sum() / weight.sum())  # same as the weighted CE mean
        return val_loss, torch.cat(preds).numpy(), gold.numpy()

    def _save_hf(self, model, directory: Path, state_dict=None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(directory, state_dict=state_dict, safe_serialization=True)
        self._tokenizer.save_pretrained(directory)

    # -- inference --------------------------------------------------------------------------
    def _ensure_model(self):
        if self._model is None:
            import torch
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            if self._best_dir is None:
                raise RuntimeError("model is not trained")
            self._tokenizer = AutoTokenizer.from_pretrained(self._best_dir, local_files_only=True)
            self._model = AutoModelForSequenceClassification.from_pretrained(
                self._best_dir, local_files_only=True
            )
            self._model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
        return self._model

    def predict_proba(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        import torch

        model = self._ensure_model()
        out = []
        texts = list(texts)
        for i in range(0, len(texts), batch_size):
            enc = self._tokenizer(
                texts[i : i + batch_size],
                truncation=True,
                padding=True,
                max_length=self.params["max_length"],
                return_tensors="pt",
            )
            with torch.no_grad():
                logits = model(**{k: v.to(model.device) for k, v in enc.items()}).logits
            out.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
        if not out:
            return np.zeros((0, len(self.labels)))
        return np.concatenate(out)

    def save(self, directory: Path) -> None:
        if self._best_dir is None or not self._best_dir.is_dir():
            raise RuntimeError("no trained checkpoint to save")
        target = directory / HF_SUBDIR
        if target.resolve() != self._best_dir.resolve():
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(self._best_dir, target)
        params = {
            **self.params,
            "base": Path(self.params["base"]).name if self.params.get("base") else None,
        }  # the base's name only: the model directory is self-contained
        (directory / PARAMS_FILE).write_text(
            json.dumps({"labels": self.labels, "params": params}, indent=2)
        )

    @classmethod
    def load(cls, directory: Path) -> TransformerClassifier:
        meta = json.loads((directory / PARAMS_FILE).read_text())
        model = cls()
        model.params.update(meta["params"])
        model.labels = meta["labels"]
        model._best_dir = directory / HF_SUBDIR
        return model


class _TransformerAdapter:
    """The triage transformer's part of the one training loop."""

    def __init__(
        self, owner: TransformerClassifier, base: Path, train_texts, y_train, val_texts, y_val
    ) -> None:
        self.owner, self.base = owner, base
        self.train_texts, self.y_train, self.val_texts, self.y_val = (
            train_texts,
            y_train,
            val_texts,
            y_val,
        )
        self.weights: torch.Tensor | None = None  # set by build()

    def build(self):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        labels = self.owner.labels
        self.owner._tokenizer = AutoTokenizer.from_pretrained(self.base, local_files_only=True)
        self.weights = torch.tensor(
            balanced_class_weights(self.y_train, len(labels)), dtype=torch.float32
        )
        return AutoModelForSequenceClassification.from_pretrained(
            self.base,
            local_files_only=True,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={lab: i for i, lab in enumerate(labels)},
            ignore_mismatched_sizes=True,
        )

    def optimizer(self, model):
        p = self.owner.params
        no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
        groups = [
            {
                "params": [w for n, w in model.named_parameters() if not n.endswith(no_decay)],
                "weight_decay": p["weight_decay"],
            },
            {
                "params": [w for n, w in model.named_parameters() if n.endswith(no_decay)],
                "weight_decay": 0.0,
            },
        ]
        return adamw(groups, lr=p["learning_rate"])

    def loaders(self):
        bs = self.owner.params["batch_size"]
        return (
            self.owner._loader(self.train_texts, self.y_train, True, bs),
            self.owner._loader(self.val_texts, self.y_val, False, bs * 2),
        )

    def _weights_on(self, device) -> torch.Tensor:
        if self.weights is None:
            raise RuntimeError("build() sets the class weights before training")
        return self.weights.to(device)

    def _loss_fn(self, device):
        import torch

        return torch.nn.CrossEntropyLoss(weight=self._weights_on(device), reduction="sum")

    def loss(self, model, batch):
        labels = batch.pop("labels")
        logits = model(**batch).logits.float()
        # weighted sum and the weight total: their ratio is the weighted-CE mean
        return self._loss_fn(logits.device)(logits, labels), self._weights_on(logits.device)[
            labels
        ].sum()

    def validate(self, model, loader, acc) -> dict:
        import torch
        from sklearn.metrics import f1_score

        loss_fn = torch.nn.CrossEntropyLoss(weight=self._weights_on(acc.device))
        val_loss, preds, golds = TransformerClassifier._validate(model, loader, loss_fn, acc)
        return {
            "val_loss": val_loss,
            "val_accuracy": float(np.mean(preds == golds)),
            "val_macro_f1": float(f1_score(golds, preds, average="macro")),
        }

    def save_best(self, model, directory: Path) -> None:
        self.owner._save_hf(model, directory)

    def load_best(self, directory: Path) -> Path:
        return directory
