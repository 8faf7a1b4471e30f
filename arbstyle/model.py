"""The arbitrary style transfer model (Ghiasi et al. 2017) and the one place that builds any model from a config.

A model is the transformer plus a source of CIN parameters: a style predictor (arbitrary styles) or a learned
table (Dumoulin et al.'s N styles; N=1 is Johnson et al.). Every model, trained, imported or loaded, is made by
`build_model(config)`, so a checkpoint only needs its config and its state.
"""
from __future__ import annotations

from collections.abc import Mapping

import jax.numpy as jnp
from flax import nnx

from arbstyle.model_config import DEFAULT_CONFIG, model_config  # noqa: F401  (re-exported)
from arbstyle.nets.layers import ShapesOnly
from arbstyle.nets.style_predictor import CINHeads, StylePredictor, StyleTable
from arbstyle.nets.transformer import Transformer


def _inception_trunk(trunk_config: Mapping, rngs: nnx.Rngs):
    from arbstyle.nets.inception import InceptionV3

    return InceptionV3(trunk_config.get("final_endpoint", "Mixed_6e"), rngs=rngs)


def _mobilenet_trunk(trunk_config: Mapping, rngs: nnx.Rngs):
    from arbstyle.nets.mobilenet import build_trunk

    return build_trunk(trunk_config, rngs=rngs)


TRUNKS = {"inception": _inception_trunk, "mobilenet": _mobilenet_trunk}


class StyleTransferModel(nnx.Module):
    def __init__(self, config: Mapping, *, rngs: nnx.Rngs):
        self.config = model_config(config)
        cfg = self.config
        if cfg["quantize_activations"]:
            from arbstyle.nets.mobilenet import build_trunk
            from arbstyle.nets.qdq import build_parts

            self.transformer, self.predictor, self.heads = build_parts(cfg, build_trunk, rngs)
            self.table = None
            return
        self.transformer = Transformer(cfg["alpha"], rngs=rngs)
        if cfg["predictor"] == "table":
            if cfg["num_styles"] < 1:
                raise ValueError("a 'table' model needs num_styles >= 1")
            self.table = StyleTable(self.transformer.cin_layers, cfg["num_styles"])
            self.predictor = self.heads = None
        else:
            trunk = TRUNKS[cfg["predictor"]](cfg["trunk"], rngs)
            self.predictor = StylePredictor(trunk, cfg["embedding_dim"], rngs=rngs)
            self.heads = CINHeads(self.transformer.cin_layers, cfg["embedding_dim"], rngs=rngs)
            self.table = None

    @property
    def arbitrary(self) -> bool:
        return self.predictor is not None

    def embed(self, style_images):
        """(B, H, W, 3) style images in [0, 1] -> (B, embedding_dim) style embeddings."""
        if not self.arbitrary:
            raise TypeError("this model has a fixed table of styles and no style predictor")
        return self.predictor(style_images)

    def style_params(self, style) -> dict:
        """CIN parameters from embeddings (B, D) for an arbitrary model, or style ids (B,) for a table model."""
        return self.heads(style) if self.arbitrary else self.table(style)

    def stylize(self, content, style, **transformer_kwargs):
        """content (B, H, W, 3) in [0, 1]; style: embeddings (B, D) or style ids (B,)."""
        return self.transformer(content, self.style_params(style), **transformer_kwargs)

    def __call__(self, content, style):
        """Training's forward pass: style images (arbitrary) or style ids (table) -> stylized content."""
        return self.stylize(content, self.embed(style) if self.arbitrary else style)


def build_model(config: Mapping | None = None, *, seed: int = 0, rngs=None, **overrides) -> StyleTransferModel:
    """The model of `config`, initialised from `seed` (or from `rngs`, anything with a `params()` key source)."""
    return StyleTransferModel(model_config(config, **overrides), rngs=nnx.Rngs(seed) if rngs is None else rngs)


class _ShapesOnlyKeys:
    """A key source for a model whose every value is overwritten after it is built.

    nnx.Rngs counts the keys it hands out; under nnx.eval_shape each count update stores a tracer in a Variable,
    which asks the tracer for its sharding, and the tracer answers by walking the whole trace so far to explain
    why it has none. That makes an abstract build quadratic in the number of layers (docs/performance.md). Its
    `ShapesOnly` key also makes every kernel initialiser (`arbstyle.nets.layers.kernel_init`) trace zeros instead
    of a truncated normal.
    """

    def params(self):
        return ShapesOnly()


def abstract_module(make):
    """`make(rngs)`'s module with shapes and dtypes only (no values, nothing computed), to be filled from weights.

    The same as `nnx.eval_shape(lambda: make(nnx.Rngs(0)))` for modules that only call `rngs.params()` and build
    their kernels with `kernel_init`, and much faster: for ghiasi-inception on the quiet 2-core Xeon, 0.42 s with
    the counter-free key source alone, 0.17 s with shape-only kernels too.
    """
    return nnx.eval_shape(lambda: make(_ShapesOnlyKeys()))


def abstract_model(config: Mapping | None = None, **overrides) -> StyleTransferModel:
    """`build_model(config)` with shapes and dtypes only (no values, nothing computed), to be filled from weights."""
    return abstract_module(lambda rngs: build_model(config, rngs=rngs, **overrides))


def mix_embeddings(embeddings, weights=None):
    """Weighted mean of style embeddings (K, D) -> (D,): the paper's style interpolation. Weights are normalised."""
    embeddings = jnp.asarray(embeddings)
    w = jnp.ones(embeddings.shape[0]) if weights is None else jnp.asarray(weights, jnp.float32)
    if w.shape != (embeddings.shape[0],) or bool(jnp.any(w < 0)) or float(w.sum()) <= 0:
        raise ValueError(f"need {embeddings.shape[0]} non-negative style weights with a positive sum, got {weights}")
    return (w / w.sum()) @ embeddings


def apply_strength(style_embedding, content_embedding, strength: float):
    """Ghiasi et al.'s identity interpolation: strength 1 is the style, 0 is the content's own embedding."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    return strength * style_embedding + (1.0 - strength) * content_embedding
