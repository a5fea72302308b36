"""Shared fixtures: tiny Turkish complaint files built here, never the real data."""

from __future__ import annotations

import csv
import os
import random
from pathlib import Path

import pytest

pytest_plugins = ["platform_helpers"]

# one home per pytest-xdist worker (the suite runs in two processes, `make test`), a home
# given in the environment included
_HOME = os.environ.get("MEDAI_HOME", "/tmp/medai-test-home") + (
    f"-{os.environ['PYTEST_XDIST_WORKER']}" if os.environ.get("PYTEST_XDIST_WORKER") else ""
)
os.environ["MEDAI_HOME"] = _HOME
os.environ.setdefault("MEDAI_CACHE_DIR", f"{_HOME}/cache")
os.environ.setdefault("MEDAI_MODELS_DIR", f"{_HOME}/models")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MEDAI_TRUSTED_HOSTS", '["localhost", "127.0.0.1", "testserver"]')
# argon2 at its least cost: the suite logs in ~2,000 times, and the served profile costs ~0.2 s
# each on 2 cores; the default profile itself is tested (test_password_hash_profiles)
os.environ.setdefault("MEDAI_PASSWORD_HASH", "insecure-fast")
os.environ.setdefault("MEDAI_PASSWORD_HASH_INSECURE_OK", "true")

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


@pytest.fixture(scope="session")
def complaints_csv(tmp_path_factory) -> Path:
    return write_csv(tmp_path_factory.mktemp("data") / "complaints.csv", make_rows())


@pytest.fixture(scope="session")
def tfidf_model_dir(tmp_path_factory, complaints_csv) -> Path:
    from medai.triage.train import TrainOptions, train

    out = tmp_path_factory.mktemp("models") / "tiny-tfidf"
    train(TrainOptions(data=complaints_csv, out=out, model_type="tfidf", name="tiny-tfidf"))
    return out


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


def gray_png(path: Path, seed: int, size: tuple[int, int] = (80, 96)) -> Path:
    """A grayscale PNG with a random smooth pattern (distinct per seed)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = rng.random((size[1] // 8 + 1, size[0] // 8 + 1))
    img = Image.fromarray((base * 255).astype("uint8")).resize(size, Image.Resampling.BILINEAR)
    img.save(path)
    return path


@pytest.fixture(scope="session")
def tiny_imaging_dir(tmp_path_factory) -> Path:
    return make_imaging_model_dir(tmp_path_factory.mktemp("imaging") / "tiny-cxr")


@pytest.fixture(scope="session")
def tiny_mri_dir(tmp_path_factory) -> Path:
    """A tiny four-class brain MRI model (the mri task's labels)."""
    return make_imaging_model_dir(
        tmp_path_factory.mktemp("mri") / "tiny-mri",
        labels=("Glioma", "Meningioma", "Pituitary", "No_Tumor"),
        task="mri",
    )


@pytest.fixture(scope="module")
def rules_engine():
    """The bundled red-flag rules alone (no e5, no classifier): what a rule change is tested on.
    ``MEDAI_TEST_RED_FLAG_RULES`` names another rules folder (a candidate edit, before it is
    sealed into the bundle) to run the same cases against."""
    import os

    from medai.triage.red_flags import build_engine

    folder = os.environ.get("MEDAI_TEST_RED_FLAG_RULES")
    return build_engine(Path(folder) if folder else None, embeddings=False, classifier=False)


def fired_flags(engine, text: str) -> set[str]:
    """The ids of the red flags ``engine`` raises on ``text``."""
    return {f.id for f in engine.check(text).flags}


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium through Playwright, one per browser-test module."""
    from platform_helpers import launched_browser

    with launched_browser() as b:
        yield b


@pytest.fixture
def shots(tmp_path) -> Path:
    """Where a browser test's screenshots go: MEDAI_SCREENSHOTS, else its temporary folder."""
    out = Path(os.environ.get("MEDAI_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return out
