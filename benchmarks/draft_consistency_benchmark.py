"""Do drafts contradict their own findings? Every image of the shared chest X-ray and brain MRI
sets, drafted in Turkish and English by the bundled models, with this code and with the code of
a baseline commit (a git worktree), in one run.

A draft contradicts its findings when the findings are impossible for the task (No Finding
beside a disease, or neither, on a chest X-ray; no class or two on a one-class MRI unless the
decision says indeterminate; a COVID-19 finding without pneumonia) or when the draft's text,
read back by the finding extractors, states a finding that is not held or leaves out one that
is. The same checker judges both versions.

    python benchmarks/draft_consistency_benchmark.py --cxr ../shared/data/chest_xray/manifest.csv \\
        --mri ../shared/data/brain_mri/manifest.csv --baseline 94ef731 \\
        --out docs/benchmarks/draft_consistency
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def emit(manifests: dict[str, Path], out: Path) -> None:
    """Worker: draft every image with the code on ``sys.path`` (this tree or a baseline)."""
    from medai.core import model_dir
    from medai.reporting.drafter import Drafter

    drafter = Drafter(embeddings=False)
    with out.open("w", encoding="utf-8") as fh:
        for task, manifest in manifests.items():
            predictor = model_dir.load(model_dir.resolve_model(None, task))
            rows = list(csv.DictReader(manifest.open(encoding="utf-8")))
            for i, row in enumerate(rows):
                path = manifest.parent / row["file"]
                result = predictor.predict(path)
                if result.refused:
                    fh.write(
                        json.dumps({"file": row["file"], "task": task, "refused": True}) + "\n"
                    )
                    continue
                payload = result.model_dump(mode="json")
                rec = {
                    "file": row["file"],
                    "task": task,
                    "refused": False,
                    "findings": [
                        {"label": f["label"], "positive": f["positive"]}
                        for f in payload["findings"]
                    ],
                    "decision": payload.get("decision"),
                    "drafts": {},
                }
                for lang in ("tr", "en"):
                    draft = drafter.draft(None, payload, task=task, lang=lang)
                    rec["drafts"][lang] = draft.sections.model_dump()
                    rec.setdefault("notes", {})[lang] = list(draft.ai_note)
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                if i % 100 == 0:
                    print(f"{task}: {i}/{len(rows)}", file=sys.stderr, flush=True)


def judge(rec: dict) -> dict[str, list[str]]:
    """Problems per language (``structure`` for the findings themselves)."""
    from medai.imaging.decision import Decision, ancestors, most_specific
    from medai.imaging.labels import space
    from medai.reporting.consistency import contradictions

    spec = space(rec["task"])
    held = [f["label"] for f in rec["findings"] if f["positive"]]
    decision = Decision.model_validate(rec["decision"]) if rec.get("decision") else None
    problems: dict[str, list[str]] = {"structure": []}
    diseases = [lab for lab in held if lab != spec.normal]
    if spec.multilabel:
        if spec.normal in held and diseases:
            problems["structure"].append("normal beside a disease")
        if not held and spec.normal is not None:
            problems["structure"].append("neither normal nor a finding")
        for lab in held:
            missing = [a for a in ancestors(spec, lab) if a in spec.labels and a not in held]
            if missing:
                problems["structure"].append(f"{lab} without {missing}")
    elif len(held) != 1 and not (decision and decision.state == "indeterminate"):
        problems["structure"].append(f"{len(held)} classes on a one-class task")
    if decision is None:  # the baseline: its findings as the decision it implied
        stated = most_specific(spec, diseases)
        state = (
            "normal"
            if held == [spec.normal]
            else "abnormal"
            if diseases
            else "indeterminate"
            if not spec.multilabel
            else "none"
        )
        decision = Decision(
            kind="multilabel" if spec.multilabel else "exclusive",
            state=state,
            positives=held,
            stated=stated,
        )
    for lang, sections in rec["drafts"].items():
        note = (rec.get("notes") or {}).get(lang, [])  # the AI note says why it did not decide
        problems[lang] = contradictions(sections, decision, rec["task"], lang, note)
    return problems


def summarise(records: list[dict]) -> dict:
    out: dict = {}
    for task in sorted({r["task"] for r in records}):
        rs = [r for r in records if r["task"] == task]
        drafted = [r for r in rs if not r["refused"]]
        judged = [judge(r) for r in drafted]
        any_bad = [j for j in judged if any(j.values())]
        exclusive_rule = ("normal beside a disease", "neither normal nor a finding", "classes on")
        out[task] = {
            "images": len(rs),
            "refused": len(rs) - len(drafted),
            "drafted": len(drafted),
            "contradicting": len(any_bad),
            "structure": sum(bool(j["structure"]) for j in judged),
            "issue_criterion": sum(
                any(k in p for p in j["structure"] for k in exclusive_rule) for j in judged
            ),
            "draft_tr": sum(bool(j.get("tr")) for j in judged),
            "draft_en": sum(bool(j.get("en")) for j in judged),
            "examples": [
                p for j in any_bad[:5] for p in (j["structure"] + j.get("tr", []) + j.get("en", []))
            ][:8],
        }
        decisions = [r.get("decision") or {} for r in drafted]
        states = [d.get("state") for d in decisions if d]
        if states:
            out[task]["states"] = {s: states.count(s) for s in sorted(set(states))}
    return out


def run_version(label: str, src: Path, manifests: dict[str, Path], work: Path) -> list[dict]:
    out = work / f"{label}.jsonl"
    env = {**os.environ, "PYTHONPATH": str(src)}
    args = [sys.executable, __file__, "--emit", str(out)]
    for task, path in manifests.items():
        args += [f"--{task}", str(path)]
    start = time.perf_counter()
    subprocess.run(args, check=True, env=env)
    print(f"{label}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return [json.loads(line) for line in out.open(encoding="utf-8")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cxr", type=Path)
    ap.add_argument("--mri", type=Path)
    ap.add_argument("--baseline", help="a commit to compare with, in the same run")
    ap.add_argument("--out", type=Path, default=ROOT / "docs/benchmarks/draft_consistency")
    ap.add_argument("--emit", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    manifests = {t: p for t, p in (("cxr", args.cxr), ("mri", args.mri)) if p}
    missing = [str(p) for p in manifests.values() if not p.is_file()]
    if missing or not manifests:
        sys.exit(f"skipped: data not found ({', '.join(missing) or 'no --cxr/--mri'})")
    if args.emit:
        emit(manifests, args.emit)
        return
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.baseline:
            tree = work / "baseline"
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.baseline],
                check=True,
                capture_output=True,
            )
            try:
                results["baseline"] = summarise(
                    run_version("baseline", tree / "src", manifests, work)
                )
            finally:
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                    check=False,
                )
        results["this version"] = summarise(run_version("current", ROOT / "src", manifests, work))
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"baseline": args.baseline, "data": {t: str(p) for t, p in manifests.items()}}
    (args.out / "results.json").write_text(
        json.dumps({**meta, **results}, indent=2, ensure_ascii=False) + "\n"
    )
    lines = [
        "| version | task | images | refused | drafted | contradicting (any) | normal beside "
        "a disease, neither, or not one MRI class | impossible findings (hierarchy "
        "included) | TR draft ≠ findings | EN draft ≠ findings |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for version, per_task in results.items():
        for task, s in per_task.items():
            lines.append(
                f"| {version} | {task} | {s['images']} | {s['refused']} | "
                f"{s['drafted']} | **{s['contradicting']}** | {s['issue_criterion']} | "
                f"{s['structure']} | "
                f"{s['draft_tr']} | {s['draft_en']} |"
            )
    (args.out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
