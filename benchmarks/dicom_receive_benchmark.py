"""How fast the DICOM node answers a modality (issue 25: the C-STORE handler only stores and
queues, so the sender is never held up by a model).

Starts a node in this process on an embedded SQLite database in a temporary MEDAI_HOME (no job
threads: the analysis is not what is measured here), builds CR chest PA instances with
pydicom (by default 2000 × 2500 16-bit, ~10 MB, like a plain radiograph, one study each) and
sends them with dcmtk's storescu, one association for all of them, as a modality does. It
measures the C-STORE handler's own time per instance (store + identity + routing + filing +
queueing, p50/p95/max) and the wall time storescu took (instances per minute end to end on
this machine, network included). The machine is shared: run it alone.

    .venv/bin/python benchmarks/dicom_receive_benchmark.py --n 100 --rows 2000 --cols 2500

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--cols", type=int, default=2500)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="medai-dicom-bench-"))
    os.environ["MEDAI_HOME"] = str(home)
    os.environ["MEDAI_JOB_THREADS"] = "0"
    from helpers.dicom import STORESCU, make_dicom
    from medai.platform.boot import open_platform
    from medai.platform.intake import dicom_node, receive

    if STORESCU is None:
        sys.exit("dcmtk's storescu is not installed")
    files = home / "sent"
    files.mkdir()
    paths = [
        make_dicom(
            files / f"{i:04d}.dcm", accession=f"B{i:06d}", rows=args.rows, cols=args.cols, seed=i
        )
        for i in range(args.n)
    ]
    handler_s: list[float] = []
    store = receive.store

    def timed(*a, **k):
        start = time.perf_counter()
        try:
            return store(*a, **k)
        finally:
            handler_s.append(time.perf_counter() - start)

    receive.store = timed
    p = open_platform()
    queued: list[int] = []
    node = dicom_node.DicomNode(
        p, lambda sid, jid, urgent: queued.append(jid), port=0, allow=("BENCH",), tls=False
    ).start()
    try:
        start = time.perf_counter()
        sent = subprocess.run(
            [
                STORESCU,
                "-aet",
                "BENCH",
                "-aec",
                "MEDAI",
                "127.0.0.1",
                str(node.port),
                *map(str, paths),
            ],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - start
    finally:
        node.stop()
        p.db.dispose()
        shutil.rmtree(home, ignore_errors=True)  # a gigabyte of test instances
    assert sent.returncode == 0, sent.stderr[-2000:]
    ms = sorted(1000 * s for s in handler_s)
    print(
        json.dumps(
            {
                "instances": args.n,
                "rows": args.rows,
                "cols": args.cols,
                "bytes_each": paths[0].stat().st_size,
                "queued_jobs": len(queued),
                "handler_ms": {
                    "p50": round(statistics.median(ms), 1),
                    "p95": round(ms[int(0.95 * (len(ms) - 1))], 1),
                    "max": round(ms[-1], 1),
                },
                "storescu_wall_s": round(wall, 2),
                "instances_per_minute": round(60 * args.n / wall, 1),
                "cpu_count": os.cpu_count(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
