#!/usr/bin/env python3
"""The six-way comparison of docs/faces.md: softmax, softmax + center, ArcFace,
ArcFace + center, CosFace, CosFace + center, each trained by `centerloss faces --all-losses
--until-converged` on the same data, seed and budget (the job's data-sized budget, or
--steps; past it, each variant trains on at the last learning rate until its validation
accuracy converges), on the built-in faces (seeds 1-3) and on data/yalefaces
(seeds 1-3); prints one markdown table row per run and variant, the best figure of each run
in bold.

    cargo build --release
    python3 scripts/compare_losses.py --out out/losses                     # every run
    python3 scripts/compare_losses.py --out out/losses --runs builtin-1,yale-1
    python3 scripts/compare_losses.py --out out/losses --tables-only       # re-read the reports

Standard library only; every extra argument after `--` goes to each `centerloss faces`.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = ["softmax", "center", "arcface", "arcface+center", "cosface", "cosface+center"]
METRICS = [
    # (column, key, higher is better, format)
    ("verification acc", "verification_accuracy", True, lambda v, r: f"{100 * v:.2f}% ± {100 * r['verification_accuracy_std']:.2f}"),
    ("ROC AUC", "roc_auc", True, lambda v, r: f"{v:.4f}"),
    ("EER", "eer", False, lambda v, r: f"{v:.3f}"),
    ("TAR@FAR=1e-3", "tar_at_far_1e-3", True, lambda v, r: "n/a" if v is None else f"{v:.3f}"),
    ("rank-1", "rank1", True, lambda v, r: f"{100 * v:.1f}%"),
    ("intra/inter", "intra_inter_ratio", False, lambda v, r: f"{v:.3f}"),
]


def runs(repo: Path):
    """(name, key, options) of every run."""
    yale = repo / "data" / "yalefaces"
    for seed in (1, 2, 3):
        yield f"built-in seed {seed}", f"builtin-{seed}", ["--seed", str(seed)]
    for seed in (1, 2, 3):
        yield f"Yale seed {seed}", f"yale-{seed}", ["--data", str(yale), "--seed", str(seed)]


def table(reports):
    head = "| data | variant | " + " | ".join(m[0] for m in METRICS) + " | converged |"
    lines = [head, "|" + "---|" * (len(METRICS) + 3)]
    for name, report in reports:
        for variant in VARIANTS:
            r = report.get(variant)
            if r is None:
                if variant in report.get("diverged", {}):
                    cells = [report["diverged"][variant].split(" (")[0]] + [""] * (len(METRICS) - 1)
                    lines.append(f"| {name} | {variant} | " + " | ".join(cells) + " | no |")
                continue
            cells = []
            for _, key, higher, fmt in METRICS:
                values = [report[v][key] for v in VARIANTS if v in report and report[v][key] is not None]
                best = (max if higher else min)(values) if values else None
                text = fmt(r[key], r)
                cells.append(f"**{text}**" if r[key] is not None and r[key] == best else text)
            converged = ("yes" if r["converged"] else "no") + f", step {r['evaluated_step']} of {r['steps']}"
            if r.get("budget_steps", r["steps"]) != r["steps"]:
                converged += f" ({r['budget_steps']} planned)"
            head = r["head"].removeprefix("margin (").removesuffix(")") + "; " if "margin" in r["head"] else ""
            label = f"{variant} ({head}λ {r['lambda']:g})"
            lines.append(f"| {name} | {label} | " + " | ".join(cells) + f" | {converged} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/losses"))
    parser.add_argument("--command", default="target/release/centerloss")
    parser.add_argument("--steps", type=int, help="the training budget of every variant (default: the job's)")
    parser.add_argument("--budget-only", action="store_true", help="stop at the budget, converged or not")
    parser.add_argument("--runs", help="comma-separated keys (builtin-1..3, yale-1..3; default: all)")
    parser.add_argument("--tables-only", action="store_true", help="read the reports of an earlier run")
    parser.add_argument("extra", nargs="*", help="passed to every `centerloss faces`")
    args = parser.parse_args()
    repo = Path(__file__).resolve().parent.parent
    reports = []
    wanted = args.runs.split(",") if args.runs else None
    for name, key, options in runs(repo):
        if wanted is not None and key not in wanted:
            continue
        out = args.out / key
        report = out / "report.json"
        if not args.tables_only:
            command = [args.command, "faces", "--all-losses", "--out", str(out), "--report-json", str(report)]
            command += (["--steps", str(args.steps)] if args.steps else []) + options + args.extra
            command += [] if args.budget_only else ["--until-converged"]
            print("$", " ".join(command), file=sys.stderr, flush=True)
            start = time.time()
            subprocess.run(command, check=True)
            print(f"{name}: {time.time() - start:.0f} s", file=sys.stderr, flush=True)
        reports.append((name, json.loads(report.read_text())))
    print(table(reports))


if __name__ == "__main__":
    main()
