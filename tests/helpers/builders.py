"""Builders the tests share: tiny Turkish complaint files, a tiny imaging model directory, a
gray PNG, the red-flag names an engine fires on a text. Real formats, built here, never the
real data."""

from __future__ import annotations

import csv
import random
from pathlib import Path

SYMPTOMS = {
    "Dermatoloji": [
        "sivilce",
        "kaşıntı",
        "egzama",
        "saç dökülmesi",
        "ciltte leke",
        "sedef",
        "akne",
        "siğil",
        "ciltte kızarıklık",
        "mantar",
    ],
    "Kulak Burun Boğaz": [
        "kulak çınlaması",
        "bademcik iltihabı",
        "burun tıkanıklığı",
        "geniz akıntısı",
        "işitme kaybı",
        "sinüzit",
        "kulak ağrısı",
        "horlama",
        "ses kısıklığı",
        "burun eğriliği",
    ],
    "Nöroloji": [
        "migren",
        "baş dönmesi",
        "ellerde uyuşma",
        "epilepsi",
        "titreme",
        "unutkanlık",
        "sinir sıkışması",
        "baş ağrısı",
        "denge kaybı",
        "karıncalanma",
    ],
    "Fizik Tedavi ve Rehabilitasyon": [
        "bel fıtığı",
        "boyun düzleşmesi",
        "diz ağrısı",
        "omuz ağrısı",
        "skolyoz",
        "kireçlenme",
        "tendinit",
        "kas ağrısı",
        "topuk dikeni",
        "menisküs",
    ],
}


TEMPLATES = [
    "Merhaba hocam {n} haftadır {s} şikayetim var, ne yapmalıyım?",
    "{s} ve {s2} sorunum var, tedavisi nedir acaba",
    "Hocam {n} aydır {s} yaşıyorum, doktora gittim ilaç verdi geçmedi",
    "Annemde {s} var, hangi tetkikler yapılmalı?",
    "{s} için hangi bölüme gitmeliyim, {n} yıldır devam ediyor",
]


def make_rows(per_class: int = 40, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for label, symptoms in SYMPTOMS.items():
        for _ in range(per_class):
            s, s2 = rng.sample(symptoms, 2)
            text = rng.choice(TEMPLATES).format(s=s, s2=s2, n=rng.randint(1, 12))
            text += f" ({rng.randint(1000, 999999)})"  # keeps rows distinct
            rows.append({"text": text, "label": label})
    rng.shuffle(rows)
    return rows


def write_csv(path: Path, rows: list[dict], fields=("text", "label")) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(fields), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def make_imaging_model_dir(
    directory: Path,
    backbone: str = "efficientnet-lite0",
    image_size: int = 64,
    seed: int = 0,
    labels: tuple[str, ...] = ("Pneumonia", "COVID-19", "No Finding"),
    task: str = "cxr",
    version: str = "test",
) -> Path:
    """A tiny imaging model directory with random weights (the real save/load format). Give
    two models registered side by side their own ``version``: the registry refuses other
    files under a name and version it holds."""
    import torch

    from medai.core.model_dir import ModelCard, save_card
    from medai.imaging.networks import ImagingNet
    from medai.imaging.train import ImagingTrainConfig, save_model

    torch.manual_seed(seed)
    net = ImagingNet(backbone, len(labels), pretrained=False).eval()
    cfg = ImagingTrainConfig(
        task=task, backbone=backbone, labels=list(labels), image_size=image_size
    )
    save_model(net, cfg, directory)
    save_card(
        directory,
        ModelCard(
            task=task,
            model_type=backbone,
            labels=list(labels),
            name=f"tiny-{backbone}",
            version=version,
        ),
    )
    return directory


def answering_model(directory: Path, task: str, probs: dict[str, float], policy: dict) -> Path:
    """A tiny model whose every answer is ``probs``: its last layer's weights are zero and its
    bias the answer's logits (softmax for the one-class MRI, sigmoid for the chest film), with
    ``policy`` as its operating points; sealed like a trained one."""
    import json
    import math

    import torch
    from safetensors.torch import load_file, save_file

    from medai.core.model_dir import reseal
    from medai.imaging.operating import POLICY_FILE

    d = make_imaging_model_dir(directory, labels=tuple(probs), task=task)
    weights = next(d.glob("*.safetensors"))
    state = load_file(str(weights))
    logits = [math.log(p) if task == "mri" else math.log(p / (1 - p)) for p in probs.values()]
    for key in [k for k in state if k.endswith("_fc.weight") or k.endswith("_fc.bias")]:
        state[key] = (
            torch.zeros_like(state[key])
            if key.endswith("weight")
            else torch.tensor(logits, dtype=state[key].dtype)
        )
    save_file(state, str(weights))
    (d / POLICY_FILE).write_text(json.dumps(policy))
    reseal(d)
    return d


def gray_png(path: Path, seed: int, size: tuple[int, int] = (80, 96)) -> Path:
    """A grayscale PNG with a random smooth pattern (distinct per seed)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = rng.random((size[1] // 8 + 1, size[0] // 8 + 1))
    img = Image.fromarray((base * 255).astype("uint8")).resize(size, Image.Resampling.BILINEAR)
    img.save(path)
    return path


def fired_flags(engine, text: str) -> set[str]:
    """The ids of the red flags ``engine`` raises on ``text``."""
    return {f.id for f in engine.check(text).flags}
