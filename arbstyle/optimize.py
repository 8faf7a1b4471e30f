"""Gatys et al. style transfer: optimise the pixels of one image against VGG-16 content and style losses.

Pixels are parametrised as sigmoid(z), so every iterate stays inside [0, 1] without clipping (clipping would
break L-BFGS's curvature pairs). Two optimisers: L-BFGS (optax.scale_by_lbfgs directions with a host-side
line search, the classic choice) and optax.adam; both evaluate the loss through one jitted value-and-grad.
"""
from __future__ import annotations

import argparse
import functools
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from arbstyle import losses as L
from arbstyle.images import SAVE_FORMATS, check_writable, load_image, resize_long, save_image
from arbstyle.nets.vgg import load_vgg16

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise", "mix")
MIN_WORK_SIDE = 16  # below this VGG's relu4_3 (3 poolings) has under 2x2 positions: no usable Gram matrix
# VGG-16's first layers keep 64 float32 channels at full resolution, plus their gradients: 2048^2 is already
# several GB, and the optimisation is hundreds of evaluations.
MAX_WORK_SIDE = 2048
_EPS = 1e-3  # keeps logit() finite for pure black/white pixels


def _logit(x):
    x = jnp.clip(x, _EPS, 1.0 - _EPS)
    return jnp.log(x) - jnp.log1p(-x)


def initial_image(content: np.ndarray, init: str, seed: int) -> np.ndarray:
    """'content': the content photo; 'noise': uniform noise (Gatys' original); 'mix': half of each."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if init == "content":
        return content
    noise = np.random.default_rng(seed).uniform(0.0, 1.0, content.shape).astype(np.float32)
    return noise if init == "noise" else 0.5 * content + 0.5 * noise


# BT.601 full-range luma/chroma (JPEG's YCbCr), as a linear map on [0, 1] RGB.
_RGB2YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32)


def transfer_luminance(stylized: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Keep the stylized image's luminance (Y) and the content's chroma (Cb, Cr): colours of the photo,
    brush strokes and texture of the painting (Gatys et al. 2016, 'Preserving colour', luminance variant
    applied after optimisation)."""
    ycc_s = stylized @ _RGB2YCC.T
    ycc_c = content @ _RGB2YCC.T
    ycc = np.concatenate([ycc_s[..., :1], ycc_c[..., 1:]], axis=-1)
    return np.clip(ycc @ np.linalg.inv(_RGB2YCC).T, 0.0, 1.0).astype(np.float32)


def _floats(breakdown) -> dict[str, float]:
    return {k: float(v) for k, v in jax.device_get(breakdown).items()}


@functools.lru_cache(maxsize=2)
def _vgg(pooling: str):
    """(graphdef, state) of the loss network, built once per process and pooling mode."""
    return nnx.split(load_vgg16(pooling))


@functools.lru_cache(maxsize=32)
def _features_program(graphdef, layers: tuple[str, ...]):
    return jax.jit(lambda state, x: nnx.merge(graphdef, state)(x, layers))


class _JittedVGG:
    """Callable like VGG16 (``vgg(x, layers)``) but compiled once per (layers, shape) for target features."""

    def __init__(self, graphdef, state):
        self.graphdef, self.state = graphdef, state

    def __call__(self, x, layers):
        return _features_program(self.graphdef, tuple(layers))(self.state, x)


@functools.lru_cache(maxsize=16)
def _value_and_grad_program(graphdef, config: L.LossConfig):
    """jitted z -> ((total, breakdown), d total / d z), shared by every optimize() call with the same loss
    settings, so jit reuses its compilation for later calls at the same image shape (e.g. one per
    content/style pair in an evaluation) instead of recompiling a fresh closure each time."""

    def loss(z, vgg_state, content_feats, target_grams):
        model = nnx.merge(graphdef, vgg_state)
        return L.perceptual_loss(model, jax.nn.sigmoid(z), content_feats, target_grams, config)

    return jax.jit(jax.value_and_grad(loss, has_aux=True))


@functools.lru_cache(maxsize=4)
def _adam_program(learning_rate: float):
    tx = optax.adam(learning_rate)

    @jax.jit
    def update(grad, state, z):
        updates, state = tx.update(grad, state, z)
        return optax.apply_updates(z, updates), state

    return tx, update


@functools.lru_cache(maxsize=1)
def _lbfgs_program(memory_size: int = 10):
    tx = optax.scale_by_lbfgs(memory_size)

    @jax.jit
    def direction(grad, state, z):
        # Also records (z - previous z, grad - previous grad) in the memory: call once per accepted point.
        d, state = tx.update(grad, state, z)
        return d, state, -jnp.vdot(grad, d)  # slope of the loss along -d

    return tx, direction


class _LBFGS:
    """L-BFGS whose line search runs on the host.

    optax.lbfgs runs its line search inside the jitted step (lax.while_loop + lax.cond around the VGG). On XLA
    CPU that step measured ~3.4x slower than the same single evaluation outside control flow, and compiled
    ~3x longer (128 px, jax 0.10.2). Here every trial point is one call of the plain jitted value-and-grad, and
    only the cheap L-BFGS two-loop recursion (optax.scale_by_lbfgs) is a separate program. The line search is
    backtracking with Armijo's sufficient-decrease test and quadratic interpolation; a step whose curvature
    s.y is not positive resets the memory rather than corrupt it.
    """

    C1 = 1e-4
    MAX_TRIALS = 20

    def __init__(self, value_and_grad: Callable, args: tuple):
        self.tx, self.direction = _lbfgs_program()
        self.value_and_grad, self.args = value_and_grad, args
        self.evaluations = 0

    def _init(self, z):
        return jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.result_type(x)), self.tx.init(z))

    def evaluate(self, z):
        (value, terms), grad = self.value_and_grad(z, *self.args)
        self.evaluations += 1
        return float(value), terms, grad

    def start(self, z):
        self.z, self.state = z, self._init(z)
        self.value, self.terms, self.grad = self.evaluate(z)
        return self.terms

    def step(self):
        """One accepted step; returns its loss breakdown, or None when no decrease can be found."""
        d, state, slope = self.direction(self.grad, self.state, self.z)
        slope = float(slope)
        if not slope < 0:  # not a descent direction: restart from the (scaled) gradient
            d, state, slope = self.direction(self.grad, self._init(self.z), self.z)
            slope = float(slope)
        t = 1.0
        for _ in range(self.MAX_TRIALS):
            z_new = self.z - t * d
            value, terms, grad = self.evaluate(z_new)
            if math.isfinite(value) and value <= self.value + self.C1 * t * slope:
                break
            # Minimiser of the quadratic through (0, value, slope) and (t, new value), within [0.1 t, 0.5 t].
            excess = value - self.value - slope * t
            guess = -slope * t * t / (2 * excess) if math.isfinite(value) and excess > 0 else 0.5 * t
            t = min(max(guess, 0.1 * t), 0.5 * t)
        else:
            return None
        if not float(jnp.vdot(z_new - self.z, grad - self.grad)) > 0:
            state = self._init(z_new)
        self.z, self.state, self.value, self.terms, self.grad = z_new, state, value, terms, grad
        return terms


def optimize(content: np.ndarray, styles: Sequence[np.ndarray], style_weights: Sequence[float] | None = None,
             size: int | None = 512, steps: int = 300, optimizer: str = "lbfgs", init: str = "content",
             preserve_color: bool = False, loss_config: L.LossConfig | None = None, seed: int = 0,
             callback: Callable[[int, dict[str, float]], bool | None] | None = None,
             learning_rate: float = 0.05, progress: bool = False) -> tuple[np.ndarray, dict[str, list[float]]]:
    """Stylize `content` (HxWx3 float in [0, 1]) towards the blended Gram statistics of `styles`.

    size: longer side of the working (and output) image; styles are scaled to the same longer side.
    callback(step, losses) is called after every step with the weighted loss breakdown; returning True stops.
    Returns (image HxWx3 float32 in [0, 1], history {"step": [...], "total": [...], "style/relu1_2": [...], ...})
    where entry k holds the losses after k steps (entry 0: the initial image).
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if not styles:
        raise ValueError("need at least one style image")
    config = loss_config or L.LossConfig()
    content = np.asarray(content, np.float32)
    if size is not None:
        content = resize_long(content, size)
        styles = [resize_long(np.asarray(s, np.float32), size) for s in styles]
    if min(content.shape[:2]) < MIN_WORK_SIDE:
        raise ValueError(f"content is {content.shape[1]}x{content.shape[0]} at this size; each side must be at "
                         f"least {MIN_WORK_SIDE} pixels")
    for s in styles:
        if min(s.shape[:2]) < MIN_WORK_SIDE:
            raise ValueError(f"a style image is {s.shape[1]}x{s.shape[0]} at this size; each side must be at "
                             f"least {MIN_WORK_SIDE} pixels")

    graphdef, vgg_state = _vgg(config.pooling)
    vgg = _JittedVGG(graphdef, vgg_state)
    content_feats = L.content_targets(vgg, jnp.asarray(content), config)
    target_grams = L.style_targets(vgg, [jnp.asarray(s) for s in styles], config, style_weights)
    value_and_grad = _value_and_grad_program(graphdef, config)
    args = (vgg_state, content_feats, target_grams)
    z = _logit(jnp.asarray(initial_image(content, init, seed))[None])

    history: dict[str, list[float]] = {}

    def record(k, terms):
        values = _floats(terms)
        history.setdefault("step", []).append(k)
        for key, value in values.items():
            history.setdefault(key, []).append(value)
        return values

    if optimizer == "lbfgs":
        lbfgs = _LBFGS(value_and_grad, args)
        record(0, lbfgs.start(z))
    else:
        tx, update = _adam_program(float(learning_rate))
        opt_state = tx.init(z)
        (_, terms), grad = value_and_grad(z, *args)
        record(0, terms)
    from arbstyle.progress import Progress

    bar = Progress(steps, desc=f"optimize ({optimizer})", unit="steps", quiet=not progress)
    t0 = time.perf_counter()
    try:
        for k in range(1, steps + 1):
            if optimizer == "lbfgs":
                terms = lbfgs.step()
                if terms is None:  # no further decrease along the L-BFGS direction: converged
                    break
                z = lbfgs.z
            else:
                z, opt_state = update(grad, opt_state, z)
                (_, terms), grad = value_and_grad(z, *args)
            values = record(k, terms)
            if not all(math.isfinite(v) for v in values.values()):
                raise FloatingPointError(f"loss became non-finite at step {k}: {values}")
            bar.set_postfix(**{key: values[key] for key in ("total", "content", "style", "tv")})
            bar.update(1)
            if callback is not None and callback(k, values):
                break
    finally:
        bar.close()
    history["seconds"] = [time.perf_counter() - t0]
    history["evaluations"] = [lbfgs.evaluations if optimizer == "lbfgs" else history["step"][-1] + 1]

    image = np.asarray(jax.nn.sigmoid(z)[0], np.float32)
    if preserve_color:
        image = transfer_luminance(image, content)
    return image, history


# ----------------------------------------------------------------------------------------------------- CLI

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
    parser.add_argument("--size", type=int, default=512, help="longer side of the result in pixels (default 512)")
    parser.add_argument("--steps", type=int, default=300, help="optimisation steps (default 300)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="lbfgs")
    parser.add_argument("--init", choices=INITS, default="content", help="starting image (default content)")
    parser.add_argument("--lr", type=float, default=0.05, help="Adam learning rate in logit space (default 0.05)")
    parser.add_argument("--preserve-color", action="store_true",
                        help="keep the content's colours: result luminance + content chroma (YCbCr)")
    defaults = L.LossConfig()
    parser.add_argument("--content-weight", type=float, default=defaults.content_weight,
                        help=f"global content weight (default {defaults.content_weight:g})")
    parser.add_argument("--style-weight", type=float, default=defaults.style_weight,
                        help=f"global style weight (default {defaults.style_weight:g})")
    parser.add_argument("--tv-weight", type=float, default=defaults.tv_weight,
                        help=f"total variation weight (default {defaults.tv_weight:g})")
    parser.add_argument("--pooling", choices=("avg", "max"), default=defaults.pooling, help="VGG pooling")
    parser.add_argument("--seed", type=int, default=0, help="seed for noise initialisation")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or progress lines")


def run(args: argparse.Namespace) -> int:
    from arbstyle.cli import CLIError

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
