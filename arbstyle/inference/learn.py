"""`arbstyle learn`: fit one painting's style through the frozen transformer, in minutes, for every later photo.

The style predictor gives a style in one shot, but for many paintings that embedding is weak. Dumoulin et al.
2017 showed that a style is fully described by the transformer's conditional instance norm (CIN) parameters;
Ghiasi et al. 2017 showed that the predictor's embedding is a good starting point. So: start from the predicted
embedding and optimise the style itself, either the embedding (through the model's CIN heads, so strength and
mixing keep working as for predicted styles) or the full CIN gamma/beta, against the perceptual loss
(`arbstyle.losses`: content + Gram style + total variation) of the transformer's outputs on a few content photos.
The transformer, the heads and VGG stay frozen; every Adam step is one jitted program.

The result is written in the `arbstyle embed` file format (`arbstyle.inference.stylize.save_styles`), so
`arbstyle stylize --style-embedding styles.npz:NAME` and `Stylizer` use it like any predicted style.
"""
from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from arbstyle import images
from arbstyle import losses as L
from arbstyle.inference.learn_cli import (DEFAULT_LR, DEFAULT_PARAMS, DEFAULT_SIZE, DEFAULT_STEPS,
                                          DEFAULT_STYLE_WEIGHT, PARAMS, SAMPLE_CONTENTS)
from arbstyle.inference.stylize import Stylizer, style_input

MIN_SIZE = 32  # VGG's relu4_3 (three poolings) and the transformer's two strides need a few cells


def center_square(image: np.ndarray, size: int) -> np.ndarray:
    """Short side to `size`, then the centre size x size square: one shape for every photo, one compilation."""
    return style_input(image, size)


def sample_contents() -> list[np.ndarray]:
    """scikit-image's bundled photos, float32 HxWx3."""
    import skimage.data

    return [images.to_float32(getattr(skimage.data, name)()) for name in SAMPLE_CONTENTS]


@dataclass
class LearnResult:
    """A fitted style: `style` is a (D,) embedding or a CIN dict {layer: (gamma (C,), beta (C,))}."""

    style: np.ndarray | dict
    start: np.ndarray | dict
    history: dict[str, list[float]] = field(default_factory=dict)  # entry k: losses after k steps
    best_step: int = 0
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def start_loss(self) -> dict[str, float]:
        return {k: v[0] for k, v in self.history.items()}

    @property
    def best_loss(self) -> dict[str, float]:
        return {k: v[self.best_step] for k, v in self.history.items()}


def _to_numpy(tree):
    return jax.tree.map(lambda a: np.asarray(a, np.float32), tree)


class StyleLearner:
    """Fits styles for one model on one fixed set of content photos.

    contents: photos (HxWx3 in [0, 1]); each is resized and centre-cropped to `size` x `size` and all of them
    form one batch, so every step sees the same photos and the loss of successive steps is comparable (the best
    step is kept). params: "embedding" (the model's embedding_dim values, through its CIN heads) or "cin" (every
    CIN layer's gamma and beta). The step compiles once per learner and serves every painting.
    """

    def __init__(self, model, contents: Sequence[np.ndarray], *, params: str = DEFAULT_PARAMS,
                 size: int = DEFAULT_SIZE, learning_rate: float | None = None,
                 loss_config: L.LossConfig | None = None, precision: str = "fp32"):
        if params not in PARAMS:
            raise ValueError(f"params must be one of {PARAMS}, got {params!r}")
        if size < MIN_SIZE:
            raise ValueError(f"size must be at least {MIN_SIZE}, got {size}")
        if not contents:
            raise ValueError("need at least one content photo")
        if model.config.get("quantize_activations"):
            raise ValueError("learning needs float activations (an int8 replay has no useful gradient)")
        self.stylizer = Stylizer(model, precision=precision)  # the predictor and its compiled embedding
        self.params = params
        self.size = int(size)
        self.learning_rate = float(learning_rate if learning_rate is not None else DEFAULT_LR[params])
        self.config = loss_config or L.LossConfig(style_weight=DEFAULT_STYLE_WEIGHT)
        self.contents = np.stack([center_square(c, self.size) for c in contents])
        vgg = nnx.split(_vgg(self.config.pooling))
        transformer = nnx.split(model.transformer)
        heads = nnx.split(model.heads)
        self._states = (transformer[1], heads[1], vgg[1])
        self._features = jax.jit(lambda state, x, layers: nnx.merge(vgg[0], state)(x, layers),
                                 static_argnums=2)
        x = jnp.asarray(self.contents)
        self._content_feats = self._features(vgg[1], x, tuple(k for k, _ in self.config.content_layers))
        self._step, self._loss = _programs(transformer[0], heads[0], vgg[0], self.config, params,
                                           self.learning_rate)
        self._tx = optax.adam(self.learning_rate)

    # ------------------------------------------------------------------ targets and starting points

    def style_grams(self, paintings: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> dict:
        """Blended Gram targets of the paintings, each at its centre `size` x `size` square."""
        layers = tuple(k for k, _ in self.config.style_layers)
        grams = []
        for painting in paintings:
            feats = self._features(self._states[2], jnp.asarray(center_square(painting, self.size))[None], layers)
            grams.append({k: L.gram_matrix(v)[0] for k, v in feats.items()})
        return L.blend_grams(grams, weights)

    def initial_style(self, paintings: Sequence[np.ndarray]):
        """The predictor's embedding (the mean over several paintings), or its CIN parameters for "cin"."""
        embedding = self.stylizer.mix(self.stylizer.embed(list(paintings)))
        if self.params == "embedding":
            return embedding
        return {k: (g[0], b[0]) for k, (g, b) in self.stylizer.cin(embedding[None]).items()}

    def losses(self, style, paintings: Sequence[np.ndarray], photos: Sequence[np.ndarray] | None = None,
               weights: Sequence[float] | None = None) -> dict[str, float]:
        """The objective's terms (mean over photos) for a style of this learner's kind, on other photos (each
        centre-cropped to `size`; default the fitting photos): how well a style generalises."""
        grams = self.style_grams(paintings, weights)
        transformer_state, heads_state, vgg_state = self._states
        theta = jax.tree.map(jnp.asarray, style)
        totals: dict[str, float] = {}
        batches = [self.contents] if photos is None else [center_square(p, self.size)[None] for p in photos]
        for x in batches:
            x = jnp.asarray(x)
            feats = self._content_feats if photos is None else self._features(
                vgg_state, x, tuple(k for k, _ in self.config.content_layers))
            _, terms = self._loss(theta, transformer_state, heads_state, vgg_state, x, feats, grams)
            for key, value in jax.device_get(terms).items():
                totals[key] = totals.get(key, 0.0) + float(value) / len(batches)
        return totals

    # ------------------------------------------------------------------ fitting

    def learn(self, paintings: Sequence[np.ndarray], *, steps: int = DEFAULT_STEPS,
              weights: Sequence[float] | None = None, start=None, progress=None,
              callback: Callable[[int, dict[str, float], object], bool | None] | None = None) -> LearnResult:
        """Fit one style to the paintings (several: one style for all of them, Gram targets blended).

        progress: an `arbstyle.progress.Progress` (updated once per step, loss terms as postfix) or None.
        callback(step, losses, style) after every evaluated step (style: the parameters those losses belong
        to, as numpy); returning True stops. Ctrl-C stops too: the result
        then holds the best style so far and `interrupted` is True. Returns the style with the lowest total loss
        over the steps evaluated (step 0 is the starting point, so it is never worse than the prediction).
        """
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        begin = time.perf_counter()
        grams = self.style_grams(paintings, weights)
        theta0 = start if start is not None else self.initial_style(paintings)
        theta = jax.tree.map(jnp.asarray, theta0)
        opt_state = self._tx.init(theta)
        result = LearnResult(style=_to_numpy(theta0), start=_to_numpy(theta0))
        best = float("inf")
        transformer_state, heads_state, vgg_state = self._states
        x = jnp.asarray(self.contents)
        try:
            # steps + 1 evaluations: the last one scores the final update (its own update is dropped)
            for k in range(steps + 1):
                new_theta, new_opt_state, terms = self._step(theta, opt_state, transformer_state, heads_state,
                                                             vgg_state, x, self._content_feats, grams)
                values = {key: float(v) for key, v in jax.device_get(terms).items()}
                for key, value in values.items():
                    result.history.setdefault(key, []).append(value)
                if not np.isfinite(values["total"]):
                    break
                if values["total"] < best:
                    best, result.best_step, result.style = values["total"], k, _to_numpy(theta)
                if progress is not None:
                    progress.set_postfix(style=values["style"], content=values["content"], tv=values["tv"])
                    if k:
                        progress.update()
                stop = callback is not None and callback(k, values, _to_numpy(theta))
                if stop or k == steps:
                    break
                theta, opt_state = new_theta, new_opt_state
        except KeyboardInterrupt:
            result.interrupted = True
        result.seconds = time.perf_counter() - begin
        return result


@functools.lru_cache(maxsize=2)
def _vgg(pooling: str):
    from arbstyle.nets.vgg import load_vgg16

    return load_vgg16(pooling)


def _programs(transformer_def, heads_def, vgg_def, config: L.LossConfig, params: str, learning_rate: float):
    """Two jitted programs: the Adam step (theta, adam state, frozen states, contents, targets) -> (next theta,
    next state, loss terms at theta), and the loss alone (same arguments without the Adam state)."""
    tx = optax.adam(learning_rate)

    def loss(theta, transformer_state, heads_state, vgg_state, x, content_feats, grams):
        batch = x.shape[0]
        if params == "embedding":
            cin = nnx.merge(heads_def, heads_state)(jnp.broadcast_to(theta, (batch, theta.shape[-1])))
        else:
            cin = {k: (jnp.broadcast_to(g, (batch, g.shape[-1])), jnp.broadcast_to(b, (batch, b.shape[-1])))
                   for k, (g, b) in theta.items()}
        out = nnx.merge(transformer_def, transformer_state)(x, cin)
        return L.perceptual_loss(nnx.merge(vgg_def, vgg_state), out, content_feats, grams, config)

    @jax.jit
    def step(theta, opt_state, transformer_state, heads_state, vgg_state, x, content_feats, grams):
        (_, terms), grad = jax.value_and_grad(loss, has_aux=True)(
            theta, transformer_state, heads_state, vgg_state, x, content_feats, grams)
        updates, opt_state = tx.update(grad, opt_state, theta)
        return optax.apply_updates(theta, updates), opt_state, terms

    return step, jax.jit(loss)
