"""The style prediction network of Ghiasi et al. 2017: a trunk, a 100-d bottleneck, and per-layer CIN heads."""
from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from arbstyle.model_config import EMBEDDING_DIM
from arbstyle.nets.layers import kernel_init


class CINHead(nnx.Module):
    """Two linear maps from the style embedding to one CIN layer's beta and gamma (no activation on either)."""

    def __init__(self, dim: int, channels: int, *, rngs: nnx.Rngs):
        self.beta = nnx.Linear(dim, channels, kernel_init=kernel_init, rngs=rngs)
        self.gamma = nnx.Linear(dim, channels, kernel_init=kernel_init, rngs=rngs)

    def __call__(self, embedding):
        return self.gamma(embedding), self.beta(embedding)


class CINHeads(nnx.Module):
    """Maps an embedding to the CIN parameters of every transformer layer, in the transformer's own order."""

    def __init__(self, cin_layers: Sequence[tuple[str, int]], dim: int = EMBEDDING_DIM, *, rngs: nnx.Rngs):
        self.names = [name for name, _ in cin_layers]
        self.heads = nnx.List([CINHead(dim, channels, rngs=rngs) for _, channels in cin_layers])

    def __call__(self, embedding) -> dict:
        return {name: head(embedding) for name, head in zip(self.names, self.heads)}


class StylePredictor(nnx.Module):
    """style image in [0, 1] -> trunk features -> spatial mean -> 1x1 conv (a Linear) -> embedding.

    The trunk (Inception-v3 to Mixed_6e in the paper, MobileNet-v2 in Magenta's mobile model) takes [-1, 1] input
    and exposes `out_channels`.
    """

    def __init__(self, trunk: nnx.Module, dim: int = EMBEDDING_DIM, *, rngs: nnx.Rngs):
        self.trunk = trunk
        self.bottleneck = nnx.Linear(trunk.out_channels, dim, kernel_init=kernel_init, rngs=rngs)

    def features(self, style):
        """The trunk's spatially averaged features (B, out_channels): what the bottleneck maps."""
        return jnp.mean(self.trunk(style * 2.0 - 1.0).astype(jnp.float32), axis=(1, 2))

    def __call__(self, style):
        return self.bottleneck(self.features(style))


class StyleTable(nnx.Module):
    """Dumoulin et al.'s N-style network: a learned table of gamma/beta per style in place of a predictor.

    Initialised to the identity (gamma 1, beta 0), as in the paper. N=1 is Johnson et al.'s single-style network.
    """

    def __init__(self, cin_layers: Sequence[tuple[str, int]], num_styles: int):
        self.names = [name for name, _ in cin_layers]
        self.gamma = nnx.Dict({_key(n): nnx.Param(jnp.ones((num_styles, c))) for n, c in cin_layers})
        self.beta = nnx.Dict({_key(n): nnx.Param(jnp.zeros((num_styles, c))) for n, c in cin_layers})

    def __call__(self, style_ids) -> dict:
        return {n: (self.gamma[_key(n)][...][style_ids], self.beta[_key(n)][...][style_ids]) for n in self.names}

    def mix(self, weights) -> dict:
        """CIN parameters of a convex combination of the table's styles; weights (B, N)."""
        return {n: (weights @ self.gamma[_key(n)][...], weights @ self.beta[_key(n)][...]) for n in self.names}


def _key(name: str) -> str:
    return name.replace("/", "_")


def param_count(module: nnx.Module, kind=nnx.Param) -> int:
    return sum(x.size for x in jax.tree.leaves(nnx.state(module, kind)))
