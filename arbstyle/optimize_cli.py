"""`arbstyle optimize`: its arguments and defaults, in a module without JAX.

The parser (and so `--help` and argument errors) is built at Python's start-up speed; `run` imports
`arbstyle.optimize`, and with it JAX, Flax and VGG-16, only once the arguments are parsed. `arbstyle.optimize`
takes its defaults from here.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from arbstyle import loss_defaults

OPTIMIZERS = ("lbfgs", "adam")
DEFAULT_OPTIMIZER = "lbfgs"
INITS = ("content", "noise", "mix")
DEFAULT_INIT = "content"
DEFAULT_SIZE = 512
DEFAULT_STEPS = 300
DEFAULT_LR = 0.05  # Adam's step in logit space


def _weights(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--content", required=True, help="content photo")
    parser.add_argument("--style", required=True, action="append", help="style image (repeat to blend styles)")
    parser.add_argument("--style-weights", type=_weights, default=None,
                        help="comma-separated blend weights, one per --style (default: equal)")
    parser.add_argument("-o", "--output", required=True, help="output image (.png, .jpg or .webp)")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE,
                        help=f"longer side of the result in pixels (default {DEFAULT_SIZE})")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                        help=f"optimisation steps (default {DEFAULT_STEPS})")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default=DEFAULT_OPTIMIZER)
    parser.add_argument("--init", choices=INITS, default=DEFAULT_INIT, help=f"starting image (default {DEFAULT_INIT})")
    parser.add_argument("--lr", type=float, default=DEFAULT_LR,
                        help=f"Adam learning rate in logit space (default {DEFAULT_LR})")
    parser.add_argument("--preserve-color", action="store_true",
                        help="keep the content's colours: result luminance + content chroma (YCbCr)")
    content_weight, style_weight, tv_weight = (loss_defaults.DEFAULT_CONTENT_WEIGHT,
                                               loss_defaults.DEFAULT_STYLE_WEIGHT, loss_defaults.DEFAULT_TV_WEIGHT)
    parser.add_argument("--content-weight", type=float, default=content_weight,
                        help=f"global content weight (default {content_weight:g})")
    parser.add_argument("--style-weight", type=float, default=style_weight,
                        help=f"global style weight (default {style_weight:g})")
    parser.add_argument("--tv-weight", type=float, default=tv_weight,
                        help=f"total variation weight (default {tv_weight:g})")
    parser.add_argument("--pooling", choices=loss_defaults.POOLINGS, default=loss_defaults.DEFAULT_POOLING,
                        help="VGG pooling")
    parser.add_argument("--seed", type=int, default=0, help="seed for noise initialisation")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or progress lines")


def run(args: argparse.Namespace) -> int:
    from arbstyle import losses as L
    from arbstyle.cli import CLIError
    from arbstyle.images import SAVE_FORMATS, check_writable, load_image, save_image
    from arbstyle.optimize import MAX_WORK_SIDE, MIN_WORK_SIDE, optimize

    output = Path(args.output)
    if output.suffix.lower() not in SAVE_FORMATS:
        raise CLIError(f"{output}: unsupported output extension {output.suffix or '(none)'!r}; "
                       f"use {', '.join(sorted(SAVE_FORMATS))}")
    check_writable(output)  # before the VGG loads and hundreds of steps run
    if not MIN_WORK_SIDE <= args.size <= MAX_WORK_SIDE:
        raise CLIError(f"--size must be between {MIN_WORK_SIDE} and {MAX_WORK_SIDE}, got {args.size}")
    if args.steps < 0:
        raise CLIError(f"--steps must be >= 0, got {args.steps}")
    if not (math.isfinite(args.lr) and args.lr > 0):  # a negative rate would climb the loss
        raise CLIError(f"--lr must be a positive number, got {args.lr}")
    for flag in ("content_weight", "style_weight", "tv_weight"):
        value = getattr(args, flag)
        if not (math.isfinite(value) and value >= 0):
            raise CLIError(f"--{flag.replace('_', '-')} must be a finite number >= 0, got {value}")
    if args.seed < 0:
        raise CLIError(f"--seed must be >= 0, got {args.seed}")
    if args.style_weights is not None and not all(math.isfinite(w) for w in args.style_weights):
        raise CLIError(f"--style-weights must be finite numbers, got {args.style_weights}")
    if args.style_weights is not None and len(args.style_weights) != len(args.style):
        raise CLIError(f"--style-weights has {len(args.style_weights)} values for {len(args.style)} --style images")
    try:
        config = L.LossConfig(content_weight=args.content_weight, style_weight=args.style_weight,
                              tv_weight=args.tv_weight, pooling=args.pooling)
        if args.style_weights is not None:
            L.blend_grams([{}] * len(args.style_weights), args.style_weights)  # validates the weights early
    except ValueError as err:
        raise CLIError(str(err)) from None

    # Decode at most 2x the working size: huge photos load fast and never fill memory.
    content = load_image(args.content, max_side=2 * args.size)
    styles = [load_image(path, max_side=2 * args.size) for path in args.style]
    for path, img in [(args.content, content), *zip(args.style, styles)]:
        short = min(img.shape[:2]) * args.size / max(img.shape[:2])
        if round(short) < MIN_WORK_SIDE:
            raise CLIError(f"{path}: {img.shape[1]}x{img.shape[0]} is too elongated: its short side would be "
                           f"{short:.0f} px at --size {args.size}, under {MIN_WORK_SIDE}")
    try:
        image, history = optimize(content, styles, args.style_weights, size=args.size, steps=args.steps,
                                  optimizer=args.optimizer, init=args.init, preserve_color=args.preserve_color,
                                  loss_config=config, seed=args.seed, learning_rate=args.lr,
                                  progress=not args.quiet)
    except ValueError as err:
        raise CLIError(f"{args.content}: {err}") from None
    save_image(image, output)
    first, last = history["total"][0], history["total"][-1]
    print(f"wrote {output} ({image.shape[1]}x{image.shape[0]}): total loss {first:.4g} -> {last:.4g} "
          f"in {history['step'][-1]} steps, {history['seconds'][0]:.1f} s")
    return 0
