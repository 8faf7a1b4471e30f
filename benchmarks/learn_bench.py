"""`arbstyle learn` against the predictor's one-shot embedding, on photos the style was NOT fitted on.

    python benchmarks/learn_bench.py                    # every validation style -> benchmarks/results/learn.{json,md}
    python benchmarks/learn_bench.py --styles 6         # the first 6 (sorted by file name)
    python benchmarks/learn_bench.py tune --styles 2    # step size / parameters: benchmarks/results/learn_tune.*

Styles are fitted with `arbstyle.inference.learn.StyleLearner` on its default photos (scikit-image's samples) and judged
on validation photos from ../shared/data/val/content, each resized and centre-cropped to --size: style loss and
content loss with `arbstyle.evaluation.evaluate`'s fixed reference definition (Gatys et al.'s layers, independent of the
fitting objective), LPIPS(photo, result), and the fitting objective's own style term on those held-out photos. The
first --gatys-styles styles are also optimised per photo with Gatys et al. (evaluate's `GatysModel`, 300 L-BFGS
steps) on the first --gatys-photos held-out photos: the quality ceiling the learned style is compared with.
Results are written after every style, so an interrupted run keeps what it measured. A contact sheet of outputs
(predicted and learned, first photos) goes to benchmarks/results/learn_contact_sheet.jpg.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from results_io import write_results  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _data(shared: Path, n_styles: int, n_photos: int):
    from arbstyle.evaluation.evaluate import list_images

    styles = list_images(shared / "data" / "val" / "styles", "style")[:n_styles]
    photos = list_images(shared / "data" / "val" / "content", "content")
    # spread over the sorted list rather than the first few (neighbours in name order are unrelated anyway)
    picks = np.linspace(0, len(photos) - 1, min(n_photos, len(photos))).round().astype(int)
    return styles, [photos[i] for i in picks]


def _setup(args):
    from arbstyle.evaluation.evaluate import Scorer, prepare_content
    from arbstyle.images import load_image
    from arbstyle.inference.learn import StyleLearner, sample_contents
    from arbstyle.paths import shared_dir
    from arbstyle.weights import registry

    shared = Path(args.shared) if args.shared else shared_dir()
    if shared is None:
        sys.exit("learn_bench: needs the shared data folder (../shared, or --shared)")
    style_paths, photo_paths = _data(shared, args.styles, args.photos)
    photos = [prepare_content(p, args.size) for p in photo_paths]
    paintings = [load_image(p, max_side=4 * args.size) for p in style_paths]
    model = registry.load_model(args.model)
    fit_photos = sample_contents()
    return model, fit_photos, style_paths, paintings, photo_paths, photos, Scorer(), StyleLearner, shared


def _mean(rows: list[dict]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def _score(stylizer, scorer, photos, content_refs, style_ref, style, keep: int = 0):
    """Reference metrics of one style on each held-out photo; the first `keep` outputs are returned too."""
    from arbstyle.evaluation.evaluate import as_8bit

    rows, kept = [], []
    batch = stylizer.style_batch([style])
    for i, (photo, ref) in enumerate(zip(photos, content_refs)):
        out = as_8bit(stylizer.stylize_arrays(photo, batch)[0])
        rows.append(scorer.score(out, ref, style_ref))
        if i < keep:
            kept.append(out)
    return rows, kept


def _gatys(scorer, photos, content_refs, style_ref, painting, steps: int) -> tuple[list[dict], float]:
    """Gatys et al.'s optimisation (evaluate's reference, L-BFGS from the photo) on each photo: metrics, s/photo."""
    from arbstyle.evaluation.evaluate import GatysModel, as_8bit

    gatys, rows = GatysModel(steps), []
    start = time.perf_counter()
    for photo, ref in zip(photos, content_refs):
        rows.append(scorer.score(as_8bit(gatys.stylize(photo, painting)), ref, style_ref))
    return rows, (time.perf_counter() - start) / len(photos)


def run(args) -> None:
    from arbstyle.contact_sheet import contact_sheet
    from arbstyle.images import save_image
    from arbstyle.machine import describe, load_average

    model, fit_photos, style_paths, paintings, photo_paths, photos, scorer, StyleLearner, shared = _setup(args)
    from arbstyle.losses import LossConfig

    learner = StyleLearner(model, fit_photos[:args.fit_photos], params=args.params, size=args.size,
                           learning_rate=args.lr, loss_config=LossConfig(style_weight=args.style_weight))
    stylizer = learner.stylizer
    content_refs = [scorer.content_reference(p) for p in photos]
    learner.learn([paintings[0]], steps=1)  # compile outside the timings
    machine = describe(("jax", "flax", "optax"))
    rows, sheet_cols = [], []
    keep = min(args.sheet_photos, len(photos))
    for path, painting in zip(style_paths, paintings):
        style_ref = scorer.style_reference(painting, args.size)
        start = time.perf_counter()
        result = learner.learn([painting], steps=args.steps)
        fit_s = time.perf_counter() - start
        predicted = result.start
        row = {"style": path.name, "fit_seconds": fit_s, "best_step": result.best_step,
               "fit_style_start": result.start_loss["style"], "fit_style_best": result.best_loss["style"]}
        gatys_photos = min(args.gatys_photos, len(photos)) if len(rows) < args.gatys_styles else 0
        for label, style in (("predicted", predicted), ("learned", result.style)):
            per_photo, outs = _score(stylizer, scorer, photos, content_refs, style_ref, style, keep)
            objective = learner.losses(style, [painting], photos)
            row.update({f"{label}_{k}": v for k, v in _mean(per_photo).items()})
            if gatys_photos:
                row.update({f"subset_{label}_{k}": v for k, v in _mean(per_photo[:gatys_photos]).items()})
            row[f"{label}_objective_style"] = objective["style"]
            row[f"{label}_objective_content"] = objective["content"]
            sheet_cols.append((path.stem[:8], label, outs))
        if gatys_photos:
            per_photo, row["gatys_seconds_per_photo"] = _gatys(
                scorer, photos[:gatys_photos], content_refs[:gatys_photos], style_ref, painting, args.gatys_steps)
            row.update({f"subset_gatys_{k}": v for k, v in _mean(per_photo).items()})
        row["style_change"] = row["learned_style_loss"] / row["predicted_style_loss"] - 1.0
        row["lpips_change"] = row["learned_lpips"] - row["predicted_lpips"]
        row["load_average_1min"] = (load_average() or [None])[0]
        rows.append(row)
        print(f"{path.name}: style {row['predicted_style_loss']:.4g} -> {row['learned_style_loss']:.4g} "
              f"({100 * row['style_change']:+.1f}%), LPIPS {row['predicted_lpips']:.3f} -> "
              f"{row['learned_lpips']:.3f}, fit {fit_s:.0f} s", flush=True)
        _write(args, rows, photo_paths, machine)
        # contact sheet: rows = (photo, predicted|learned), columns = styles; outputs only
        names = [c[0] for c in sheet_cols[::2]]
        cells = [[sheet_cols[2 * j + m][2][i] for j in range(len(names))] for i in range(keep) for m in (0, 1)]
        labels = [f"{photo_paths[i].stem[:8]} {('predicted', 'learned')[m]}" for i in range(keep) for m in (0, 1)]
        # quality 85: 22 columns at 95 (4:4:4 chroma) weigh 2.4 MB
        save_image(contact_sheet(cells, labels, names, tile=128), RESULTS / "learn_contact_sheet.jpg",
                   quality=85)


TARGETS = {"style_change": -0.25, "lpips_change": 0.05, "fit_seconds": 300.0}  # the bar for `learn`


def _write(args, rows, photo_paths, machine) -> None:
    from arbstyle.machine import summary

    keys = ("predicted_style_loss", "learned_style_loss", "predicted_lpips", "learned_lpips",
            "predicted_content_loss", "learned_content_loss", "predicted_objective_style",
            "learned_objective_style", "fit_seconds")
    means = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    loads = [r["load_average_1min"] or 0.0 for r in rows]
    change = [r["style_change"] for r in rows]
    subset = [r for r in rows if "subset_gatys_style_loss" in r]
    subset_keys = [f"subset_{m}_{k}" for m in ("predicted", "learned", "gatys") for k in ("style_loss", "lpips")]
    result = {"command": " ".join(["python benchmarks/learn_bench.py", *sys.argv[1:]]), "machine": machine,
              "settings": {k: getattr(args, k) for k in ("model", "size", "steps", "params", "lr", "style_weight",
                                                         "fit_photos", "gatys_steps")},
              "eval_photos": [p.name for p in photo_paths], "styles": len(rows), "mean": means,
              "style_change_mean": float(np.mean(change)), "style_change_median": float(np.median(change)),
              "lpips_change_mean": means["learned_lpips"] - means["predicted_lpips"],
              "fit_seconds_max": max(r["fit_seconds"] for r in rows),
              "subset_mean": {k: float(np.mean([r[k] for r in subset])) for k in subset_keys} if subset else {},
              "targets": TARGETS, "load_average_1min_range": [min(loads), max(loads)], "rows": rows}
    met = {"style": result["style_change_mean"] <= TARGETS["style_change"],
           "lpips": result["lpips_change_mean"] <= TARGETS["lpips_change"],
           "time": result["fit_seconds_max"] < TARGETS["fit_seconds"]}
    result["targets_met"] = met
    # read right after each style, so the run's own threads are in it (two busy cores read about 2)
    load_text = (f"1-minute load average {min(loads):.1f}-{max(loads):.1f} at the end of each style, this run's own "
                 "work included.")
    lines = [
        "# `arbstyle learn` vs the predicted embedding (and Gatys et al. on a subset)", "",
        f"`{result['command']}` on {summary(machine)}; {load_text}", "",
        f"Model `{args.model}`; {len(rows)} validation styles; fitted with `--params {args.params}`, {args.steps} "
        f"steps, style weight {args.style_weight}, size {args.size}, on {args.fit_photos} scikit-image photos; "
        f"judged on {len(photo_paths)} validation photos not used for fitting (centre squares at the same size). "
        "Style/content loss: `arbstyle.evaluation.evaluate`'s reference definition; objective style: the fitting "
        "loss's style term on the held-out photos. Change: learned vs predicted style loss. Fit s: wall time of "
        "`StyleLearner.learn` for one painting (compiled beforehand, as every later painting of a run is).", "",
        f"Targets: mean change at most {100 * TARGETS['style_change']:+.0f}% "
        f"({'met' if met['style'] else 'missed'}: {100 * result['style_change_mean']:+.1f}%); LPIPS at most "
        f"+{TARGETS['lpips_change']} above the predicted embedding's ({'met' if met['lpips'] else 'missed'}: "
        f"{result['lpips_change_mean']:+.3f}); every painting fitted in under {TARGETS['fit_seconds']:.0f} s "
        f"({'met' if met['time'] else 'missed'}: at most {result['fit_seconds_max']:.0f} s).", "",
        "| style | style loss predicted | learned | change | LPIPS predicted | learned | objective style "
        "predicted | learned | fit s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['style']} | {r['predicted_style_loss']:.4g} | {r['learned_style_loss']:.4g} | "
                     f"{100 * r['style_change']:+.1f}% | {r['predicted_lpips']:.3f} | {r['learned_lpips']:.3f} | "
                     f"{r['predicted_objective_style']:.4g} | {r['learned_objective_style']:.4g} | "
                     f"{r['fit_seconds']:.0f} |")
    m = means
    lines.append(f"| **mean** | {m['predicted_style_loss']:.4g} | {m['learned_style_loss']:.4g} | "
                 f"{100 * result['style_change_mean']:+.1f}% (median {100 * result['style_change_median']:+.1f}%) | "
                 f"{m['predicted_lpips']:.3f} | {m['learned_lpips']:.3f} | {m['predicted_objective_style']:.4g} | "
                 f"{m['learned_objective_style']:.4g} | {m['fit_seconds']:.0f} |")
    if subset:
        lines += ["", f"Gatys et al. ({args.gatys_steps} L-BFGS steps from the photo, `evaluate`'s reference "
                  f"`GatysModel`, at {args.size} px) on the first {len(subset)} styles x the first "
                  f"{args.gatys_photos} held-out photos, with the predicted and learned styles on the same pairs:", "",
                  "| style | style loss predicted | learned | Gatys | LPIPS predicted | learned | Gatys | "
                  "Gatys s / photo |", "|---|---|---|---|---|---|---|---|"]
        for r in subset + [dict(result["subset_mean"], style="**mean**", gatys_seconds_per_photo=float(
                np.mean([r["gatys_seconds_per_photo"] for r in subset])))]:
            lines.append(f"| {r['style']} | " + " | ".join(
                f"{r[f'subset_{m}_style_loss']:.4g}" for m in ("predicted", "learned", "gatys")) + " | " + " | ".join(
                f"{r[f'subset_{m}_lpips']:.3f}" for m in ("predicted", "learned", "gatys"))
                + f" | {r['gatys_seconds_per_photo']:.0f} |")
    lines += ["", "![outputs](learn_contact_sheet.jpg)", ""]
    write_results(RESULTS / "learn", result, "\n".join(lines))


def tune(args) -> None:
    """A small grid: each (params, step size) on a few styles, scored on held-out photos at several steps."""
    from arbstyle.losses import LossConfig
    from arbstyle.machine import describe

    model, fit_photos, style_paths, paintings, photo_paths, photos, scorer, StyleLearner, _ = _setup(args)
    machine = describe(("jax", "flax", "optax"))
    content_refs = [scorer.content_reference(p) for p in photos]
    checkpoints = sorted({int(c) for c in args.checkpoints.split(",")} | {0})
    rows = []
    for setting in args.grid.split(","):
        params, lr = setting.split(":")
        learner = StyleLearner(model, fit_photos[:args.fit_photos], params=params, size=args.size,
                               learning_rate=float(lr), loss_config=LossConfig(style_weight=args.style_weight))
        learner.learn([paintings[0]], steps=1)  # compile outside the timings
        for path, painting in zip(style_paths, paintings):
            style_ref = scorer.style_reference(painting, args.size)
            snapshots = {}

            def keep(step, losses, style):
                if step in checkpoints:
                    snapshots[step] = style

            start = time.perf_counter()
            learner.learn([painting], steps=max(checkpoints), callback=keep)
            seconds = time.perf_counter() - start
            for steps, style in sorted(snapshots.items()):
                metrics = _mean(_score(learner.stylizer, scorer, photos, content_refs, style_ref, style)[0])
                row = {"params": params, "lr": float(lr), "style": path.name, "steps": steps,
                       "seconds_per_step": seconds / (max(checkpoints) + 1), **metrics}
                rows.append(row)
                print(row, flush=True)
    write_tune(rows, "python benchmarks/learn_bench.py " + " ".join(sys.argv[1:]), machine)


def write_tune(rows, command: str, machine: dict, note: str = "") -> None:
    from arbstyle.machine import summary

    lines = ["# `arbstyle learn`: step size and parameters", "",
             f"`{command}` on {summary(machine)} (shared and busy: seconds are inflated).", "",
             *([note, ""] if note else []),
             "Scored on held-out validation photos with `arbstyle.evaluation.evaluate`'s reference losses; step 0 is "
             "the predicted embedding.", "",
             "| params | lr | style | steps | style loss | content loss | LPIPS | s/step |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['params']} | {r['lr']} | {r['style']} | {r['steps']} | {r['style_loss']:.4g} | "
                     f"{r['content_loss']:.4g} | {r['lpips']:.3f} | {r['seconds_per_step']:.2f} |")
    write_results(RESULTS / "learn_tune", {"command": command, "machine": machine, "rows": rows, "note": note},
                  "\n".join(lines))


def main(argv=None) -> None:
    from arbstyle.inference.learn import DEFAULT_PARAMS, DEFAULT_SIZE, DEFAULT_STEPS, DEFAULT_STYLE_WEIGHT

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", choices=["run", "tune"], default="run")
    parser.add_argument("--model", default="magenta-mobile")
    parser.add_argument("--shared", help="the shared data folder (default: ../shared beside the checkout)")
    parser.add_argument("--styles", type=int, default=22, help="how many validation styles (sorted by name)")
    parser.add_argument("--photos", type=int, default=8, help="held-out validation photos to judge on")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--params", default=DEFAULT_PARAMS)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--style-weight", type=float, default=DEFAULT_STYLE_WEIGHT)
    parser.add_argument("--fit-photos", type=int, default=None, help="how many of the default fitting photos")
    parser.add_argument("--sheet-photos", type=int, default=3)
    parser.add_argument("--gatys-styles", type=int, default=3, help="the first N styles also get Gatys et al.'s "
                        "optimisation (slow: the quality ceiling, on a subset)")
    parser.add_argument("--gatys-photos", type=int, default=1, help="... on the first N held-out photos")
    parser.add_argument("--gatys-steps", type=int, default=300)
    parser.add_argument("--grid", default="embedding:0.05,cin:0.02", help="tune: params:lr settings")
    parser.add_argument("--checkpoints", default="20,40,60", help="tune: steps at which to judge")
    args = parser.parse_args(argv)
    if args.fit_photos is None:
        from arbstyle.inference.learn import SAMPLE_CONTENTS

        args.fit_photos = len(SAMPLE_CONTENTS)
    (tune if args.mode == "tune" else run)(args)


if __name__ == "__main__":
    main()
