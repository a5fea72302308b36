"""What a radiologist must delete before signing a correct AI draft (issue 69): held-out films and
slices of the shared sets, drafted in Turkish and English by the bundled models, with this code
and with a baseline commit's (a git worktree), in one run.

A draft is *correct* when the AI's decision is the image's label (a decided finding that is the
label, or a normal decision on a normal image). What the radiologist signs of a correct draft is
its report with every sentence about the AI itself deleted (the scanner of
``tests/reporting/test_report_register.py``: scope, what it read, why it did not decide, a
likelihood, a threshold, a distance, sources) and the "(YZ önerisi)" marks removed. Measured:
the characters a person deletes or changes by hand (Levenshtein distance), where this code's
sign dialog removes the marks with one button (the baseline had none: the marks were deleted by
hand too). A scanner's reading, not a radiologist's: it says how much AI meta text a draft
carries, not whether its findings are right.

    python benchmarks/draft_edit_benchmark.py --baseline a221a41 --every 10 \\
        --out docs/benchmarks/draft_edit_2026-11-28.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
NORMAL = {"cxr": "No Finding", "mri": "No_Tumor"}


def _scanner():
    """The register scanner of ``reporting.consistency`` (the marks, the AI meta words)."""
    from medai.reporting.consistency import AI_MARK, AI_META

    return AI_MARK, AI_META


def emit(out: Path, every: int) -> None:
    """Worker: draft the chosen images with the code on ``sys.path``."""
    from medai.core import model_dir
    from medai.reporting.drafter import Drafter

    drafter = Drafter(embeddings=False)
    with out.open("w", encoding="utf-8") as fh:
        for task, name in (("cxr", "chest_xray"), ("mri", "brain_mri")):
            manifest = DATA / name / "manifest.csv"
            predictor = model_dir.load(model_dir.resolve_model(None, task))
            rows = list(csv.DictReader(manifest.open(encoding="utf-8")))[::every]
            for row in rows:
                result = predictor.predict(manifest.parent / row["file"])
                if result.refused:
                    continue
                payload = result.model_dump(mode="json")
                rec = {"file": row["file"], "task": task, "label": row["label"], "drafts": {}}
                rec["decision"] = payload.get("decision")
                for lang in ("tr", "en"):
                    d = drafter.draft(None, payload, task=task, lang=lang)
                    rec["drafts"][lang] = d.sections.model_dump()
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")


def correct(rec: dict) -> bool:
    d = rec.get("decision") or {}
    if d.get("state") == "normal":
        return rec["label"] == NORMAL[rec["task"]]
    return (
        d.get("state") == "abnormal" and d.get("primary") == rec["label"] and not d.get("conflict")
    )


def signed_text(text: str) -> str:
    """The text with every sentence about the AI deleted and the marks removed."""
    marks, meta = _scanner()
    kept = [s for s in re.split(r"(?<=[.!?])\s+", marks.sub("", text)) if s and not meta.search(s)]
    return " ".join(kept)


def distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def judge(path: Path, button: bool) -> dict:
    per: dict[str, list[int]] = {"tr": [], "en": []}
    drafts = 0
    for line in path.open(encoding="utf-8"):
        rec = json.loads(line)
        drafts += 1
        if not correct(rec):
            continue
        for lang, sections in rec["drafts"].items():
            total = 0
            for text in sections.values():
                start = _scanner()[0].sub("", text) if button else text
                total += distance(start, signed_text(text))
            per[lang].append(total)
    out = {"drafts": drafts}
    for lang, values in per.items():
        n = len(values)
        out[lang] = {
            "correct_drafts": n,
            "mean_chars_deleted": round(sum(values) / n, 1) if n else None,
            "drafts_needing_no_edit": sum(v == 0 for v in values),
            "max_chars_deleted": max(values) if values else None,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", required=True)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--emit", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.emit:
        emit(a.emit, a.every)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "baseline"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), a.baseline], cwd=ROOT, check=True
        )
        try:
            results = {}
            for name, src, button in (
                ("before", tree / "src", False),
                ("after", ROOT / "src", True),
            ):
                out = Path(tmp) / f"{name}.jsonl"
                env = {**os.environ, "PYTHONPATH": str(src)}
                subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--baseline",
                        a.baseline,
                        "--every",
                        str(a.every),
                        "--out",
                        str(a.out),
                        "--emit",
                        str(out),
                    ],
                    env=env,
                    check=True,
                )
                results[name] = judge(out, button)
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False
            )
    report = {"baseline": a.baseline, "every": a.every, **results}
    a.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
