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

import argparse
import functools
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from arbstyle import images
from arbstyle import losses as L
from arbstyle.inference.stylize import DEFAULT_MODEL, STYLE_SIZE, Stylizer, style_input

PARAMS = ("embedding", "cin")
DEFAULT_PARAMS = "embedding"
DEFAULT_SIZE = 256
DEFAULT_STEPS = 50
# Adam step sizes, from `python benchmarks/learn_bench.py tune` (benchmarks/results/learn_tune.md): an embedding
# step of 0.1 lowered the held-out style loss fastest but overshot between 15 and 30 steps, so half of it; CIN
# gamma/beta at 0.03 still improved at 30 steps.
DEFAULT_LR = {"embedding": 0.05, "cin": 0.03}
# The style term's weight over LossConfig's calibration (which balances content and style for Gatys' pixel
# optimisation): with 1, a learned embedding lowered the objective mostly through its content term and the
# held-out style loss of one of two validation styles rose (benchmarks/results/learn_style_weight1.md).
DEFAULT_STYLE_WEIGHT = 3.0
# Photos that ship with scikit-image (no download): the default content set the style is fitted on.
SAMPLE_CONTENTS = ("astronaut", "chelsea", "coffee", "rocket")
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


# ---------------------------------------------------------------------------------------------- CLI


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
    from arbstyle.cli import CLIError
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
