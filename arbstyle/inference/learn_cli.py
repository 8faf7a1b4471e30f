"""`arbstyle learn`: its arguments and the learner's defaults, in a module without JAX.

The parser (and so `--help` and argument errors) is built at Python's start-up speed; `run` imports
`arbstyle.inference.learn`, and with it JAX, Flax, Optax and VGG-16, only once the arguments are parsed.
`arbstyle.inference.learn.StyleLearner` takes its defaults from here.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from arbstyle.inference.stylize_defaults import DEFAULT_MODEL, STYLE_SIZE

PARAMS = ("embedding", "cin")
DEFAULT_PARAMS = "embedding"
DEFAULT_SIZE = 256
DEFAULT_STEPS = 80
# Adam step sizes, from `python benchmarks/learn_bench.py tune` (benchmarks/results/learn_tune.md): an embedding
# step of 0.1 lowered the held-out style loss fastest but overshot between 15 and 30 steps, so half of it; CIN
# gamma/beta at 0.03 still improved at 30 steps.
DEFAULT_LR = {"embedding": 0.05, "cin": 0.03}
# The style term's weight over LossConfig's calibration (which balances content and style for Gatys' pixel
# optimisation): with 1, a learned embedding lowered the objective mostly through its content term and the
# held-out style loss of one of two validation styles rose (benchmarks/results/learn_style_weight1.md); with 3 and
# 50 steps, the held-out style loss fell 18.7% on 15 styles (LPIPS unchanged); 8 and 12 with 75-80 steps cut it
# further on three styles for at most +0.03 LPIPS (benchmarks/results/learn_tune_style_weight.md).
DEFAULT_STYLE_WEIGHT = 10.0
# Photos that ship with scikit-image (no download): the default content set the style is fitted on.
SAMPLE_CONTENTS = ("astronaut", "chelsea", "coffee", "rocket")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paintings", nargs="+", help="paintings: files, folders (their images) or globs")
    parser.add_argument("-o", "--output", required=True, help="output .npz (the `arbstyle embed` format)")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"model name or training workdir (default {DEFAULT_MODEL})")
    parser.add_argument("--content", nargs="+", metavar="PHOTOS",
                        help="content photos to fit on: files, folders or globs (default: scikit-image's "
                             f"sample photos {', '.join(SAMPLE_CONTENTS)})")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"Adam steps (default {DEFAULT_STEPS})")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE,
                        help=f"photos and paintings are fitted as size x size centre squares (default {DEFAULT_SIZE})")
    parser.add_argument("--params", choices=PARAMS, default=DEFAULT_PARAMS,
                        help="what is learned: the style embedding (default; strength and mixing work as for "
                             "predicted styles) or every CIN layer's gamma and beta (more freedom)")
    parser.add_argument("--lr", type=float, help="Adam step size (default: "
                        + ", ".join(f"{k} {v}" for k, v in DEFAULT_LR.items()) + ")")
    parser.add_argument("--style-weight", type=float, default=DEFAULT_STYLE_WEIGHT,
                        help="weight of the style term against content and TV (default %(default)s; higher: more "
                             "style, less of the photo)")
    parser.add_argument("--mix", action="store_true", help="one style fitted to all paintings together")
    parser.add_argument("--name", help="name of the style in the file (default: the painting's file stem; "
                        "with --mix the stems joined by '+')")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def _check_output(out: Path) -> None:
    """Refuse before any work if the file could not be written: a temporary file is created and removed."""
    import tempfile

    from arbstyle.cli import CLIError

    if out.suffix.lower() != ".npz":
        raise CLIError(f"{out}: the styles file must end in .npz")
    if out.is_dir():
        raise CLIError(f"{out}: is a folder; -o names the .npz file to write")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    except OSError as err:
        raise CLIError(f"{out}: cannot write here ({err.strerror or err})") from None
    import os

    os.close(fd)
    os.unlink(tmp)


def run(args) -> int:
    from arbstyle import images
    from arbstyle import losses as L
    from arbstyle.cli import CLIError
    from arbstyle.inference.learn import MIN_SIZE, StyleLearner, center_square, sample_contents
    from arbstyle.inference.stylize import save_styles
    from arbstyle.inference.stylize_cli import expand_inputs
    from arbstyle.progress import Progress
    from arbstyle.weights import registry

    if args.steps < 1:
        raise CLIError(f"--steps must be at least 1, got {args.steps}")
    if args.size < MIN_SIZE:
        raise CLIError(f"--size must be at least {MIN_SIZE}, got {args.size}")
    if args.lr is not None and not args.lr > 0:
        raise CLIError(f"--lr must be positive, got {args.lr}")
    if not args.style_weight > 0:
        raise CLIError(f"--style-weight must be positive, got {args.style_weight}")
    out = Path(args.output).expanduser()
    files = expand_inputs(args.paintings, "painting")
    if args.mix:
        names = [args.name or "+".join(p.stem for p in files)]
    else:
        if args.name and len(files) > 1:
            raise CLIError(f"--name gives one name for {len(files)} paintings; use it with one painting or --mix")
        names = [args.name] if args.name else [p.stem for p in files]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise CLIError(f"several paintings are named {', '.join(dupes)}; names come from file stems and must "
                           "differ")
    # Every input is decoded before the model loads (a bad file stops the run before any work), and kept only as
    # the centre square the predictor and the losses see, so a folder of large paintings stays small in memory.
    keep = max(args.size, STYLE_SIZE)
    paintings = [center_square(images.load_image(p, max_side=4 * keep), keep) for p in files]
    if args.content:
        contents = [center_square(images.load_image(p, max_side=4 * args.size), args.size)
                    for p in expand_inputs(args.content, "content")]
    else:
        contents = sample_contents()
    _check_output(out)

    try:
        model = registry.load_model(args.model)
    except ValueError as err:  # unknown model name, bad workdir
        raise CLIError(f"--model {args.model}: {err}") from None
    if not getattr(model, "arbitrary", False):
        raise CLIError(f"--model {args.model}: has a fixed style table, no style predictor to start from")
    try:
        learner = StyleLearner(model, contents, params=args.params, size=args.size, learning_rate=args.lr,
                               loss_config=L.LossConfig(style_weight=args.style_weight))
    except ValueError as err:
        raise CLIError(f"--model {args.model}: {err}") from None

    groups = [paintings] if args.mix else [[p] for p in paintings]
    learned, interrupted = [], False
    with Progress(args.steps * len(groups), desc="learn", unit="step", quiet=args.quiet) as bar:
        try:
            for name, group in zip(names, groups):
                result = learner.learn(group, steps=args.steps, progress=bar)
                start, best = result.start_loss, result.best_loss
                bar.write(f"{name}: style loss {start['style']:.4g} -> {best['style']:.4g}, total "
                          f"{start['total']:.4g} -> {best['total']:.4g} (best at step {result.best_step} of "
                          f"{len(result.history['total']) - 1}), {result.seconds:.0f} s")
                learned.append(result.style)
                if result.interrupted:
                    interrupted = True
                    break
        except KeyboardInterrupt:  # between two styles' fits: keep the finished ones
            interrupted = True
    if not learned:
        raise KeyboardInterrupt
    save_styles(out, names[:len(learned)], learned, model=args.model)
    what = "embedding" if args.params == "embedding" else "CIN parameter set"
    print(f"wrote {len(learned)} learned style {what}(s) to {out}"
          + (f" (interrupted: {names[len(learned) - 1]!r} is the best so far)" if interrupted else ""),
          file=sys.stderr if interrupted else sys.stdout)
    return 130 if interrupted else 0
