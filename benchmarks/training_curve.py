"""Training curves of one or more workdirs (stages in order), from their metrics logs (workdir/metrics.jsonl).

    python benchmarks/training_curve.py runs/ghiasi_128 runs/ghiasi_256 --out benchmarks/results/ghiasi_inception_training

Writes OUT.png (training loss, smoothed, and the held-out loss on the sample pairs vs step, with content and
style terms), OUT.json (every logged point) and OUT.md (a table of the held-out loss at each evaluation, and the
training throughput). Steps of later stages continue after the earlier stages' last step.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_io import write_results  # noqa: E402

from arbstyle.training.train import read_metrics  # noqa: E402

TERMS = ("total", "content", "style", "tv")


def collect(workdirs: list[Path]) -> list[dict]:
    """Every logged row, with 'stage' and a 'global_step' that continues across stages."""
    rows, offset = [], 0
    for stage, workdir in enumerate(workdirs):
        logged = read_metrics(workdir)
        if not logged:
            raise SystemExit(f"{workdir}: no {workdir / 'metrics.jsonl'} (not a training workdir, or nothing logged)")
        by_step: dict[tuple[int, bool], dict] = {}
        for row in logged:  # a resumed run logs some steps again: keep the last
            by_step[(row["step"], any(k.startswith("val/") for k in row))] = row
        for (step, _), row in sorted(by_step.items()):
            rows.append({**row, "stage": stage, "workdir": workdir.name, "global_step": offset + step})
        offset += max(step for step, _ in by_step)
    return rows


def smooth(values: list[float], window: int) -> list[float]:
    out = []
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1):i + 1]
        out.append(sum(chunk) / len(chunk))
    return out


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in rows if "loss/total" in r]
    val = [r for r in rows if "val/loss/total" in r]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, prefix, data, label in ((axes[0], "loss/", train, "training batches (moving mean of 10 logs)"),
                                    (axes[1], "val/loss/", val, "held-out pairs (fixed)")):
        steps = [r["global_step"] for r in data]
        for term in TERMS:
            values = [r[prefix + term] for r in data]
            if prefix == "loss/":
                values = smooth(values, 10)
            ax.plot(steps, values, label=term, marker="o" if prefix.startswith("val") else None, markersize=3)
        for stage_start in sorted({r["global_step"] - r["step"] for r in rows})[1:]:
            ax.axvline(stage_start, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel("step")
        ax.set_ylabel("weighted loss")
        ax.set_title(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown(rows: list[dict], workdirs: list[Path], title: str, png: str) -> str:
    val = [r for r in rows if "val/loss/total" in r]
    speed = [r["train/images_per_second"] for r in rows if "train/images_per_second" in r]
    lines = [f"# {title}", "", f"![training curve]({png})", "",
             "Held-out loss on the run's fixed sample pairs (held-out photos x held-out paintings; "
             "`arbstyle.losses` with the experiment's weights):", "",
             "| stage | step | total | content | style | tv |", "|---|---|---|---|---|---|"]
    for r in val:
        lines.append(f"| {r['workdir']} | {r['global_step']} | " +
                     " | ".join(f"{r['val/loss/' + t]:.4f}" for t in TERMS) + " |")
    if speed:
        ordered = sorted(speed)
        lines += ["", f"Training throughput: median {ordered[len(ordered) // 2]:.2f} images/s over {len(speed)} "
                      f"logging windows (min {ordered[0]:.2f}, max {ordered[-1]:.2f})."]
    for r in rows:
        if "distill/held_out_r2" in r:
            lines += ["", f"{r['workdir']}: bottleneck distilled before step 1 from {int(r['distill/styles'])} "
                          f"augmented training styles; held-out R^2 of the teacher's embeddings "
                          f"{r['distill/held_out_r2']:.3f} on {int(r['distill/held_out'])} styles (training "
                          f"{r['distill/train_r2']:.3f}, ridge {r['distill/ridge']:g})."]
    lines += ["", "Reproduce: `python benchmarks/training_curve.py " + " ".join(f"runs/{w.name}" for w in workdirs)
              + " --out ...` (the workdirs of the training commands)"]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workdirs", nargs="+", type=Path, help="training workdirs, in stage order")
    parser.add_argument("--out", type=Path, required=True, help="output stem (OUT.png, OUT.json, OUT.md)")
    parser.add_argument("--title", default="Training curve")
    args = parser.parse_args(argv)
    rows = collect(args.workdirs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    png = args.out.with_name(args.out.name + ".png")
    plot(rows, png, args.title)
    write_results(args.out, {"workdirs": [str(w.name) for w in args.workdirs], "rows": rows},
                  markdown(rows, args.workdirs, args.title, png.name))
    print(f"wrote {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
