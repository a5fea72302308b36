"""Fine-tune any local Hugging Face encoder (BioBERTurk, BERTurk, …) for department triage.

The reference recipe: class-weighted cross-entropy, AdamW with linear warm-up/decay, gradient
accumulation, early stopping on validation loss with the best checkpoint restored, bf16 (or
fp16) on GPU, resumable from the last epoch. Runs on one or several processes/GPUs through
Hugging Face Accelerate: start it with ``medai triage train --num-processes N`` or
``accelerate launch -m medai.cli triage train ...``.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medai.core.training import EarlyStopping, auto_mixed_precision, balanced_class_weights
from medai.triage.models.base import label_index, sorted_classes

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

    def __init__(self, base: str | Path | None = None, work_dir: str | Path | None = None,
                 epochs: int = 4, batch_size: int = 16, learning_rate: float = 3e-5,
                 weight_decay: float = 0.01, warmup_ratio: float = 0.1,
                 grad_accum: int = 1, patience: int = 2, max_length: int = 256,
                 mixed_precision: str = "auto", resume: bool = False, seed: int = 13) -> None:
        self.params = {
            "base": str(base) if base else None, "epochs": epochs, "batch_size": batch_size,
            "learning_rate": learning_rate, "weight_decay": weight_decay,
            "warmup_ratio": warmup_ratio, "grad_accum": grad_accum, "patience": patience,
            "max_length": max_length, "mixed_precision": mixed_precision, "seed": seed,
        }
        self.work_dir = Path(work_dir) if work_dir else None
        self.resume = resume
        self.labels: list[str] = []
        self.history: list[dict] = []
        self._model = None
        self._tokenizer = None
        self._best_dir: Path | None = None
        self.train_info: dict = {}

    # -- training ---------------------------------------------------------------------------
    def _loader(self, texts, labels, shuffle: bool, batch_size: int):
        from torch.utils.data import DataLoader
        from transformers import DataCollatorWithPadding

        enc = self._tokenizer(list(texts), truncation=True, max_length=self.params["max_length"])
        return DataLoader(_Encoded(dict(enc), labels), batch_size=batch_size, shuffle=shuffle,
                          collate_fn=DataCollatorWithPadding(self._tokenizer))

    def fit(self, train_texts: Sequence[str], train_labels: Sequence[str],
            val_texts: Sequence[str], val_labels: Sequence[str]) -> None:
        import torch
        from accelerate import Accelerator
        from accelerate.utils import set_seed
        from sklearn.metrics import f1_score
        from tqdm.auto import tqdm
        from transformers import (
            AutoModelForSequenceClassification,
            AutoTokenizer,
            get_linear_schedule_with_warmup,
        )

        p = self.params
        if not p["base"]:
            raise ValueError("the transformer model type needs --base DIR (a local HF model)")
        base = Path(p["base"])
        if not (base / "config.json").is_file():
            raise FileNotFoundError(f"{base}: not a Hugging Face model directory (no config.json)")
        if self.work_dir is None:
            raise ValueError("work_dir is required to keep checkpoints")
        mp = auto_mixed_precision() if p["mixed_precision"] == "auto" else p["mixed_precision"]
        acc = Accelerator(mixed_precision=mp, gradient_accumulation_steps=p["grad_accum"],
                          cpu=not torch.cuda.is_available())
        set_seed(p["seed"])
        self.train_info = {"num_processes": acc.num_processes, "mixed_precision": mp,
                           "device": str(acc.device)}
        self.labels = sorted_classes(train_labels)
        y_train = label_index(train_labels, self.labels)
        keep = [i for i, lab in enumerate(val_labels) if lab in set(self.labels)]
        y_val = label_index([val_labels[i] for i in keep], self.labels)
        val_texts = [val_texts[i] for i in keep]

        self._tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(
            base, local_files_only=True, num_labels=len(self.labels),
            id2label=dict(enumerate(self.labels)),
            label2id={lab: i for i, lab in enumerate(self.labels)},
            ignore_mismatched_sizes=True,
        )
        train_dl = self._loader(train_texts, y_train, True, p["batch_size"])
        val_dl = self._loader(val_texts, y_val, False, p["batch_size"] * 2)
        weights = torch.tensor(balanced_class_weights(y_train, len(self.labels)),
                               dtype=torch.float32)
        no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
        groups = [
            {"params": [w for n, w in model.named_parameters() if not n.endswith(no_decay)],
             "weight_decay": p["weight_decay"]},
            {"params": [w for n, w in model.named_parameters() if n.endswith(no_decay)],
             "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(groups, lr=p["learning_rate"])
        steps_per_epoch = math.ceil(len(train_dl) / max(1, acc.num_processes) / p["grad_accum"])
        total = max(1, steps_per_epoch * p["epochs"])
        scheduler = get_linear_schedule_with_warmup(optimizer, int(p["warmup_ratio"] * total),
                                                    total)
        model, optimizer, train_dl, val_dl, scheduler = acc.prepare(
            model, optimizer, train_dl, val_dl, scheduler)
        loss_fn = torch.nn.CrossEntropyLoss(weight=weights.to(acc.device))

        ckpt = self.work_dir / "checkpoints"
        last, best_dir, state_file = ckpt / "last", ckpt / "best", ckpt / "trainer_state.json"
        stopper, start_epoch = EarlyStopping(patience=p["patience"]), 1
        if self.resume and state_file.is_file() and last.is_dir():
            acc.load_state(str(last))
            stopper = EarlyStopping.load(state_file)
            start_epoch = stopper.history[-1]["epoch"] + 1 if stopper.history else 1
            acc.print(f"resuming after epoch {start_epoch - 1} (best val loss {stopper.best:.4f})")

        for epoch in range(start_epoch, p["epochs"] + 1):
            if stopper.should_stop:
                break
            model.train()
            total_loss, seen = 0.0, 0
            bar = tqdm(train_dl, desc=f"epoch {epoch}/{p['epochs']}",
                       disable=not acc.is_local_main_process)
            for batch in bar:
                with acc.accumulate(model):
                    labels = batch.pop("labels")
                    logits = model(**batch).logits
                    loss = loss_fn(logits.float(), labels)
                    acc.backward(loss)
                    if acc.sync_gradients:
                        acc.clip_grad_norm_(model.parameters(), 1.0)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
                total_loss += loss.item() * len(labels)
                seen += len(labels)
                bar.set_postfix(loss=f"{total_loss / max(seen, 1):.4f}")
            train_loss = acc.reduce(torch.tensor(total_loss / max(seen, 1),
                                                 device=acc.device), "mean").item()
            val_loss, preds, golds = self._validate(model, val_dl, loss_fn, acc)
            record = {"train_loss": train_loss, "val_loss": val_loss,
                      "val_accuracy": float(np.mean(preds == golds)),
                      "val_macro_f1": float(f1_score(golds, preds, average="macro"))}
            improved = stopper.update(epoch, record)
            acc.print(f"epoch {epoch}: " + ", ".join(f"{k}={v:.4f}" for k, v in record.items()))
            acc.wait_for_everyone()
            if improved and acc.is_main_process:
                self._save_hf(acc.unwrap_model(model), best_dir, acc.get_state_dict(model))
            acc.save_state(str(last))
            if acc.is_main_process:
                stopper.save(state_file)
            acc.wait_for_everyone()
        self.history = stopper.history
        self._best_dir = best_dir
        acc.wait_for_everyone()
        acc.end_training()
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
                losses.append(torch.nn.functional.cross_entropy(
                    logits, labels, weight=loss_fn.weight, reduction="none").cpu())
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
                self._best_dir, local_files_only=True)
            self._model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
        return self._model

    def predict_proba(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        import torch

        model = self._ensure_model()
        out = []
        texts = list(texts)
        for i in range(0, len(texts), batch_size):
            enc = self._tokenizer(texts[i : i + batch_size], truncation=True, padding=True,
                                  max_length=self.params["max_length"], return_tensors="pt")
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
        (directory / PARAMS_FILE).write_text(json.dumps(
            {"labels": self.labels, "params": self.params}, indent=2))

    @classmethod
    def load(cls, directory: Path) -> TransformerClassifier:
        meta = json.loads((directory / PARAMS_FILE).read_text())
        model = cls()
        model.params.update(meta["params"])
        model.labels = meta["labels"]
        model._best_dir = directory / HF_SUBDIR
        return model
