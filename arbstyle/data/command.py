"""`arbstyle data`: build and inspect TFDS datasets, look at and time the training pipeline.

    arbstyle data build shared                          # the three ../shared/data datasets
    arbstyle data build dtd painter_by_numbers --manual-dir ~/archives
    arbstyle data info shared_paintings
    arbstyle data preview --out pairs.png               # a grid: content row over style row
    arbstyle data bench --batch 8 --steps 20            # pipeline images/s on this machine
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", default=None, help="TFDS data_dir (default $ARBSTYLE_TFDS_DIR or <cache>/tfds)")
    common.add_argument("--manual-dir", default=None, help="folder holding the downloaded archives")

    build = sub.add_parser("build", parents=[common], help="build datasets (array_record) if not built yet")
    build.add_argument("specs", nargs="+", help="dataset specs, or 'shared' for the three shared datasets")
    build.add_argument("--quiet", action="store_true", help="no progress bars or progress lines")
    info = sub.add_parser("info", parents=[common], help="splits, sizes and skipped files of a built dataset")
    info.add_argument("spec")

    pipe = argparse.ArgumentParser(add_help=False)
    pipe.add_argument("--content", default=None, help="content spec(s), comma-separated")
    pipe.add_argument("--style", default=None, help="style spec(s), comma-separated")
    pipe.add_argument("--split", default="train")
    pipe.add_argument("--seed", type=int, default=0)
    pipe.add_argument("--batch", type=int, default=8, help="global batch")
    pipe.add_argument("--size", type=int, default=256, help="content and style crop size")
    pipe.add_argument("--threads", type=int, default=None, help="reader threads (default: config's)")
    preview = sub.add_parser("preview", parents=[common, pipe], help="save one batch as an image grid")
    preview.add_argument("--out", required=True, help="output image (.png/.jpg)")
    bench = sub.add_parser("bench", parents=[common, pipe], help="measure pipeline throughput")
    bench.add_argument("--steps", type=int, default=20)
    bench.add_argument("--json", action="store_true", help="print the result as JSON")
    bench.add_argument("--quiet", action="store_true", help="no progress bar or progress lines")


# flag -> (smallest, largest) accepted value; None is unbounded
_RANGES = {"seed": (0, None), "batch": (1, 4096), "size": (8, 4096), "threads": (1, 256), "steps": (1, None)}


def _check_numbers(args) -> None:
    from arbstyle.cli import CLIError

    for flag, (low, high) in _RANGES.items():
        value = getattr(args, flag, None)
        if value is not None and (value < low or (high is not None and value > high)):
            span = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise CLIError(f"--{flag} must be {span}, got {value}")


def _config(args):
    from arbstyle.data.pipeline import default_config

    _check_numbers(args)
    cfg = default_config()
    cfg.data_dir = args.data_dir or ""
    cfg.manual_dir = args.manual_dir or ""
    if args.content:
        cfg.content = args.content
    if args.style:
        cfg.style = args.style
    cfg.content_size = cfg.style_size = args.size
    if args.threads:
        cfg.num_threads = args.threads
    return cfg


def _grid(batch: dict) -> np.ndarray:
    content, style = batch["content"], batch["style"]
    height = max(content.shape[1], style.shape[1])

    def row(images):
        padded = [np.pad(im, ((0, height - im.shape[0]), (0, 0), (0, 0)), constant_values=1.0) for im in images]
        return np.concatenate(padded, axis=1)

    top, bottom = row(content), row(style)
    width = max(top.shape[1], bottom.shape[1])
    top = np.pad(top, ((0, 0), (0, width - top.shape[1]), (0, 0)), constant_values=1.0)
    bottom = np.pad(bottom, ((0, 0), (0, width - bottom.shape[1]), (0, 0)), constant_values=1.0)
    return np.concatenate([top, bottom], axis=0)


def _build(args) -> int:
    import sys

    import tensorflow_datasets as tfds

    from arbstyle.data import catalog
    from arbstyle.progress import Progress, is_terminal

    if args.quiet or not is_terminal(sys.stderr):
        tfds.disable_progress_bar()  # TFDS's own bars are carriage-return redraws: unreadable in a log file
    specs = [s for spec in args.specs for s in (catalog.SHARED if spec == "shared" else [spec])]
    for spec in specs:  # an unknown name fails before anything is built or reported
        catalog.get_builder(spec, data_dir=args.data_dir)
    # A line per dataset built: each one is news (building one can take minutes), so no rate limit.
    with Progress(len(specs), desc="data build", unit="datasets", quiet=args.quiet, every_seconds=0) as bar:
        for spec in specs:
            bar.set_postfix(dataset=spec)
            summary = catalog.summary(catalog.load(spec, data_dir=args.data_dir, manual_dir=args.manual_dir))
            bar.update()
            print(summary, flush=True)
    return 0


def run(args) -> int:
    from arbstyle.cli import CLIError

    try:
        return _run(args)
    except ValueError as err:  # an unknown dataset name or a malformed spec: the user's input, said in one line
        raise CLIError(str(err)) from None


def _run(args) -> int:
    from arbstyle.data import catalog, pipeline

    if args.data_command == "build":
        return _build(args)
    if args.data_command == "info":
        builder = catalog.get_builder(args.spec, data_dir=args.data_dir)
        if not builder.is_prepared():
            raise FileNotFoundError(f"{builder.data_path}: {args.spec} is not built (run `arbstyle data build`)")
        print(catalog.summary(builder))
        print(f"  path: {builder.data_path}")
        print(f"  features: {', '.join(builder.info.features.keys())}")
        for split, reasons in sorted((builder.info.metadata or {}).get("skipped_reasons", {}).items()):
            for reason in reasons[:20]:
                print(f"  skipped [{split}] {reason}")
        return 0
    cfg = _config(args)
    iterator = pipeline.make_pipeline(cfg, split=args.split, seed=args.seed, global_batch=args.batch,
                                      process_index=0, process_count=1)
    if args.data_command == "preview":
        from arbstyle.images import save_image

        path = save_image(_grid(next(iterator)), args.out)
        print(f"wrote {path}: content (top) and style (bottom), {args.batch} pairs")
        return 0
    # bench: the first batch pays for thread start-up and dataset opening; time the rest.
    from arbstyle.progress import progress

    next(iterator)
    start = time.perf_counter()
    for _ in progress(range(args.steps), desc="data bench", unit="batches", quiet=args.quiet):
        next(iterator)
    seconds = time.perf_counter() - start
    result = {"pairs_per_s": args.steps * args.batch / seconds, "batch": args.batch, "size": args.size,
              "steps": args.steps, "threads": int(cfg.num_threads), "seconds": seconds}
    print(json.dumps(result) if args.json else
          f"{result['pairs_per_s']:.1f} pairs/s (batch {args.batch}, {args.size} px, {cfg.num_threads} threads, "
          f"{args.steps} batches in {seconds:.2f} s)")
    return 0

