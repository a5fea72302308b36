"""Checkpoint size and contents before and after issue 48, in one run, on the same BLIP-2.

A small BLIP-2 (``gpu_check.BLIP2_SPECS["small"]``: 15.8 M parameters, the frozen base dominating
as at real size) is trained for one epoch with LoRA r 16 by ``train_blip2_captioner`` from two
checkouts: ``--before`` (a commit before the change, checked out as a git worktree) and this one.
Each run is a separate process with its own ``PYTHONPATH``; the script reports what
``checkpoints/last`` holds in each, JSON on stdout (docs/benchmarks/gpu.md).

    .venv/bin/python benchmarks/checkpoint_size.py --before 6f351a2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

TRAIN = """
import json, sys
from pathlib import Path
from medai.reporting.pipeline import train_blip2_captioner
data, out, base = map(Path, sys.argv[1:4])
m = train_blip2_captioner(data, out, str(base), epochs=1, batch_size=4, lora_r=16)
last = out / "checkpoints" / "last"
files = {p.name: p.stat().st_size for p in sorted(last.iterdir())}
print(json.dumps({"files": files, "total_bytes": sum(files.values()),
                  "adapter_bytes": sum(p.stat().st_size for p in (out / "adapter").rglob("*")
                                       if p.is_file())}))
"""


def _run(src: Path, data: Path, out: Path, base: Path) -> dict:
    env = dict(
        os.environ,
        PYTHONPATH=str(src),
        OMP_NUM_THREADS="2",
        MEDAI_HOME=str(out.parent / f"home-{out.name}"),
    )
    proc = subprocess.run(
        [sys.executable, "-c", TRAIN, str(data), str(out), str(base)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="a commit before the change")
    parser.add_argument("--pairs", type=int, default=48)
    args = parser.parse_args(argv)
    from gpu_check import build_blip2, synthetic_roco

    with tempfile.TemporaryDirectory(prefix="medai-ckpt-size-") as tmp:
        work = Path(tmp)
        old = work / "before"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(old), args.before],
            check=True,
        )
        try:
            captions, _images, words = synthetic_roco(work / "roco", args.pairs, 64)
            rows = (
                ["file,caption"]
                + [  # the pairs layout: what both checkouts read
                    f"roco/images/{line.split(',', 1)[0]}.png,{line.split(',', 1)[1]}"
                    for line in captions.read_text().splitlines()[1:]
                ]
            )
            (work / "pairs.csv").write_text("\n".join(rows) + "\n")
            base = work / "blip2-small"
            built = build_blip2(base, "small", words)
            report = {
                "base": built,
                "before": {"commit": args.before},
                "after": {
                    "commit": subprocess.run(
                        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                        capture_output=True,
                        text=True,
                    ).stdout.strip()
                },
            }
            for name, src in (("before", old / "src"), ("after", ROOT / "src")):
                report[name].update(_run(src, work / "pairs.csv", work / name / "out", base))
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=False
            )
    report["ratio"] = round(report["after"]["total_bytes"] / report["before"]["total_bytes"], 4)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
