"""Where the time of one training step goes: the trainer's step split into the parts it computes, each jitted alone.

    python benchmarks/train_profile.py                 # 128 px, batch 8, the `table` workload of train_bench.py
    python benchmarks/train_profile.py --size 256 --workload arbitrary

The parts, cumulative, on the same batch and weights as `arbstyle train` uses them (training mode):

* targets: VGG-16 features of the content (content loss) and Gram matrices of the style images (style loss);
* + transformer: the stylized batch (for `arbitrary`, the Inception-v3 style predictor and CIN heads first);
* + loss: VGG-16 on the stylized batch and the perceptual loss, i.e. the step's whole forward pass;
* step: `arbstyle.training.train.make_train_step` as `arbstyle train` runs it: forward, backward, Adam.

Each part's own time is its row minus the row before. Parts alternate run by run (median of --runs after a
warm-up), and XLA's `cost_analysis` gives each compiled part's floating-point operations.
Results: benchmarks/results/train_profile.{json,md}.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import arbstyle  # noqa: E402,F401  (XLA flags before JAX)
import jax  # noqa: E402
from flax import nnx  # noqa: E402

from arbstyle import losses  # noqa: E402
from arbstyle.machine import describe, settled_load_average, summary  # noqa: E402
from arbstyle.nets.vgg import load_vgg16  # noqa: E402
from arbstyle.training import train as trainer  # noqa: E402
from results_io import write_results  # noqa: E402
from train_bench import NUM_STYLES, JaxStep, real_batch  # noqa: E402

WORKLOADS = {"table": {"predictor": "table", "alpha": 1.0, "num_styles": NUM_STYLES},
             "arbitrary": {"predictor": "inception", "alpha": 1.0}}
PARTS = ("targets", "+ transformer", "+ loss (whole forward)", "step (forward, backward, Adam)")


def flops(compiled) -> float | None:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"]) if cost and "flops" in cost else None


def build_parts(workload: str, size: int, batch: int) -> tuple[dict, dict]:
    """{part: zero-argument function running it once, blocking} and {part: GFLOP}."""
    loss_cfg = losses.LossConfig()
    model_cfg = WORKLOADS[workload]
    arbitrary = model_cfg["predictor"] != "table"
    content, style, ids = real_batch(size, batch)
    data = {"content": content, "style": style, "style_id": ids}

    step = JaxStep(model_cfg, loss_cfg)
    step.compile(data)
    model = trainer.init_model(model_cfg, seed=0)
    graphdef, _, _, _, pieces = trainer.split_for_training(model)
    vgg_graphdef, vgg_state = nnx.split(load_vgg16(loss_cfg.pooling))
    content_layers = [k for k, _ in loss_cfg.content_layers]
    style_layers = [k for k, _ in loss_cfg.style_layers]
    condition = style if arbitrary else ids

    def targets(vgg_state, content, style):
        vgg = nnx.merge(vgg_graphdef, vgg_state)
        return vgg(content, content_layers), trainer.style_grams(vgg, style, style_layers)

    def transformed(pieces, vgg_state, content, style, condition):
        model = nnx.merge(graphdef, *pieces.values())
        return targets(vgg_state, content, style), model(content, condition)

    def forward(pieces, vgg_state, content, style, condition):
        (content_feats, grams), stylized = transformed(pieces, vgg_state, content, style, condition)
        return losses.perceptual_loss(nnx.merge(vgg_graphdef, vgg_state), stylized, content_feats, grams, loss_cfg)

    args = {"targets": (vgg_state, content, style),
            "+ transformer": (pieces, vgg_state, content, style, condition),
            "+ loss (whole forward)": (pieces, vgg_state, content, style, condition)}
    fns = {"targets": targets, "+ transformer": transformed, "+ loss (whole forward)": forward}
    runs, gflop = {}, {}
    for part, fn in fns.items():
        compiled = jax.jit(fn).lower(*args[part]).compile()
        gflop[part] = (flops(compiled) or 0.0) / 1e9
        runs[part] = (lambda c=compiled, a=args[part]: jax.block_until_ready(c(*a)))
    gflop[PARTS[-1]] = (flops(step.compiled) or 0.0) / 1e9
    runs[PARTS[-1]] = lambda: step(data)
    return runs, gflop


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = ["# One training step, part by part", "",
             f"Command: `{result['command']}`  ",
             f"Machine: {summary(m)}; 1-minute load average {result['load'][0]} before, {result['load'][1]} after.",
             "", f"Workload `{result['workload']}` (see benchmarks/train_bench.py), {result['size']} px, batch "
             f"{result['batch']}; median of {result['runs']} runs per part, parts alternating. Each part's own "
             "time is its row minus the row before.", "",
             "| part (cumulative) | s | own s | share of the step | GFLOP (XLA) |", "|---|---|---|---|---|"]
    previous = 0.0
    total = result["seconds"][PARTS[-1]]
    for part in PARTS:
        s = result["seconds"][part]
        own = s - previous if part != PARTS[-1] else s - result["seconds"][PARTS[-2]]
        lines.append(f"| {part} | {s:.3f} | {own:.3f} | {own / total:.0%} | {result['gflop'][part]:.1f} |")
        previous = s
    lines += ["", "The step's own row (backward and Adam) is the step minus the whole forward pass."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="table")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "train_profile"))
    args = parser.parse_args()
    load = [settled_load_average()[0]]
    runs, gflop = build_parts(args.workload, args.size, args.batch)
    times = {part: [] for part in PARTS}
    for part in PARTS:  # warm-up
        runs[part]()
    for i in range(args.runs):
        for part in PARTS:
            start = time.perf_counter()
            runs[part]()
            times[part].append(time.perf_counter() - start)
        print(f"run {i + 1}/{args.runs}: " + ", ".join(f"{p} {times[p][-1]:.2f} s" for p in PARTS), flush=True)
    load.append(settled_load_average()[0])
    result = {"command": "python benchmarks/train_profile.py " + " ".join(
                  f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
              "machine": describe(), "workload": args.workload, "size": args.size, "batch": args.batch,
              "runs": args.runs, "load": load, "gflop": gflop, "times": times,
              "seconds": {p: statistics.median(t) for p, t in times.items()}}
    write_results(Path(args.out), result, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
