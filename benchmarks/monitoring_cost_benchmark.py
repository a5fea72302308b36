"""What monitoring costs per study: the time of ``monitoring.observe`` (keep the sample, then
check every threshold: PSI/KS per label, image statistics, Hotelling's T² on the embedding,
metadata and population mix, agreement) beside the
bundled chest X-ray model's own prediction, on embedded SQLite, as the samples grow past the
reference (100) into a full window (50) and beyond — and, in the same run, the checks as they
were before the embedding and population mix (samples without them, under another hash).

    .venv/bin/python benchmarks/monitoring_cost_benchmark.py [--studies 300]

Writes docs/benchmarks/lifecycle/monitoring_cost.json. Uses made-up film-like images (the
cost does not depend on what the films show)."""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "benchmarks" / "lifecycle"


def film(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(((rng.random((64, 64)) * 0.6 + 0.2) * 255).astype("uint8"))
    img = img.resize((1024, 1024), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--studies", type=int, default=300)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="medai-monitor-cost-"))
    os.environ["MEDAI_HOME"] = str(home)
    from medai.platform.boot import open_platform
    from medai.platform.lifecycle import monitoring
    from medai.services import imaging as imaging_service

    p = open_platform(f"sqlite:///{home / 'medai.db'}", home=home)
    predictor = p.models.get("cxr")
    ref = predictor.identity
    predict_ms, record_ms, plain_ms = [], [], []
    meta = {"modality": "CR", "view": "PA", "source": "dicom"}
    for i in range(args.studies):
        image = imaging_service.read_image(film(i))
        image.metadata.update(manufacturer="ACME", age_band="40-64", sex="F")
        start = time.perf_counter()
        result = predictor.predict(image)
        payload = result.model_dump(mode="json")
        predict_ms.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()  # everything: embedding (T²) and population mix too
        monitoring.observe(
            p, None, "cxr", ref.content_hash, payload, image, predict_ms[-1], meta, result.embedding
        )
        record_ms.append((time.perf_counter() - start) * 1000)
        image.metadata.update(manufacturer="", age_band="", sex="")
        start = time.perf_counter()  # the checks before this change, in the same run
        monitoring.observe(
            p,
            None,
            "cxr",
            "sha256:before-embedding-and-population",
            payload,
            image,
            predict_ms[-1],
            meta,
        )
        plain_ms.append((time.perf_counter() - start) * 1000)

    def med(xs: list[float]) -> float:
        return round(statistics.median(xs), 2)

    filled, plain = record_ms[150:] or record_ms, plain_ms[150:] or plain_ms
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores, "
        f"{platform.machine()}, Python {platform.python_version()}",
        "studies": args.studies,
        "model": ref.name,
        "predict_ms_median": med(predict_ms),
        "record_ms_median_during_reference": med(record_ms[:100]),
        "record_ms_median_full_window": med(filled),
        "record_ms_p95_full_window": round(sorted(filled)[int(0.95 * len(filled))], 2),
        "record_ms_median_full_window_without_embedding_and_population": med(plain),
        "share_of_predict": round(statistics.median(filled) / statistics.median(predict_ms), 3),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "monitoring_cost.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    p.db.dispose()


if __name__ == "__main__":
    sys.exit(main())
