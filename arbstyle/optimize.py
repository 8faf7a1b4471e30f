"""Gatys et al. style transfer: optimise the pixels of one image against VGG-16 content and style losses.

Pixels are parametrised as sigmoid(z), so every iterate stays inside [0, 1] without clipping (clipping would
break L-BFGS's curvature pairs). Two optimisers: L-BFGS (optax.scale_by_lbfgs directions with a host-side
line search, the classic choice) and optax.adam; both evaluate the loss through one jitted value-and-grad.
"""
from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from arbstyle import losses as L
from arbstyle.images import resize_long
from arbstyle.nets.vgg import load_vgg16
from arbstyle.optimize_cli import (DEFAULT_INIT, DEFAULT_LR, DEFAULT_OPTIMIZER, DEFAULT_SIZE, DEFAULT_STEPS, INITS,
                                   OPTIMIZERS)

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
             size: int | None = DEFAULT_SIZE, steps: int = DEFAULT_STEPS, optimizer: str = DEFAULT_OPTIMIZER,
             init: str = DEFAULT_INIT, preserve_color: bool = False, loss_config: L.LossConfig | None = None,
             seed: int = 0, callback: Callable[[int, dict[str, float]], bool | None] | None = None,
             learning_rate: float = DEFAULT_LR, progress: bool = False) -> tuple[np.ndarray, dict[str, list[float]]]:
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
