"""Perceptual losses on VGG-16 features: content, style (Gram matrices) and total variation.

Definitions follow Magenta's image_stylization/learning.py (the losses Ghiasi et al. trained with):
  content  = mean over (H, W, C) of (F(x) - F(c))^2                     per content layer
  Gram     = F^T F / (H * W)                                             (C x C, per image)
  style    = mean over (C, C) of (G(x) - G_target)^2                     per style layer
  tv       = (sum dy^2 / 2 / n_y + sum dx^2 / 2 / n_x)                   (tf.nn.l2_loss / size), batch mean
Every function returns a flat breakdown {"total", "content", "style", "tv", "content/<layer>",
"style/<layer>"} of *weighted* terms, so callers can log, plot or test each part.

Default weights are calibrated for torchvision's VGG-16 with ImageNet-normalised [0, 1] input, not Magenta's
Caffe-style 0..255 input; docs/losses.md explains how and gives the measured numbers.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp

from arbstyle.loss_defaults import (DEFAULT_CONTENT_LAYERS, DEFAULT_CONTENT_WEIGHT, DEFAULT_POOLING,
                                    DEFAULT_STYLE_LAYERS, DEFAULT_STYLE_WEIGHT, DEFAULT_TV_WEIGHT, POOLINGS)
from arbstyle.nets.vgg import RELU_NAMES


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Which VGG layers enter each loss and how much. Hashable, so it can be a static jit argument.

    Effective weight of a layer = global term weight * per-layer weight.
    """

    content_layers: tuple[tuple[str, float], ...] = DEFAULT_CONTENT_LAYERS
    style_layers: tuple[tuple[str, float], ...] = DEFAULT_STYLE_LAYERS
    content_weight: float = DEFAULT_CONTENT_WEIGHT
    style_weight: float = DEFAULT_STYLE_WEIGHT
    tv_weight: float = DEFAULT_TV_WEIGHT
    pooling: str = DEFAULT_POOLING

    def __post_init__(self):
        # Accept dicts for convenience but store tuples (hashable, ordered).
        for name in ("content_layers", "style_layers"):
            value = getattr(self, name)
            if isinstance(value, Mapping):
                value = tuple(value.items())
            value = tuple((str(k), float(v)) for k, v in value)
            unknown = [k for k, _ in value if k not in RELU_NAMES]
            if unknown:
                raise ValueError(f"{name}: unknown VGG-16 layer(s) {unknown}; choose from {RELU_NAMES}")
            object.__setattr__(self, name, value)
        for name in ("content_weight", "style_weight", "tv_weight"):
            value = float(getattr(self, name))
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
            object.__setattr__(self, name, value)
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be {' or '.join(map(repr, POOLINGS))}, got {self.pooling!r}")

    @property
    def weighted(self) -> bool:
        """Whether any term counts: with content, style and TV weights all 0 the loss network need not run."""
        return bool(self.content_weight or self.style_weight or self.tv_weight)

    @property
    def content(self) -> dict[str, float]:
        """content layer -> effective weight."""
        return {k: self.content_weight * w for k, w in self.content_layers}

    @property
    def style(self) -> dict[str, float]:
        """style layer -> effective weight."""
        return {k: self.style_weight * w for k, w in self.style_layers}

    @property
    def layers(self) -> tuple[str, ...]:
        """Every VGG layer any loss needs, in network order."""
        wanted = {k for k, _ in self.content_layers} | {k for k, _ in self.style_layers}
        return tuple(name for name in RELU_NAMES if name in wanted)

    def replace(self, **changes) -> LossConfig:
        return dataclasses.replace(self, **changes)


def gram_matrix(features: jax.Array) -> jax.Array:
    """(..., H, W, C) -> (..., C, C): F^T F / (H * W), summed over positions."""
    *lead, h, w, c = features.shape
    flat = features.reshape(*lead, h * w, c)
    return jnp.einsum("...pc,...pd->...cd", flat, flat) / (h * w)


def content_losses(features: Mapping[str, jax.Array], targets: Mapping[str, jax.Array],
                   weights: Mapping[str, float]) -> dict[str, jax.Array]:
    """layer -> weight * mean squared feature difference."""
    return {name: w * jnp.mean((features[name] - targets[name]) ** 2) for name, w in weights.items()}


def style_losses(features: Mapping[str, jax.Array], target_grams: Mapping[str, jax.Array],
                 weights: Mapping[str, float]) -> dict[str, jax.Array]:
    """layer -> weight * mean squared Gram difference (targets broadcast over the batch)."""
    return {name: w * jnp.mean((gram_matrix(features[name]) - target_grams[name]) ** 2)
            for name, w in weights.items()}


def total_variation(images: jax.Array) -> jax.Array:
    """Magenta's TV: (l2(dy) / n_dy + l2(dx) / n_dx), averaged over the batch; images (B, H, W, C) or (H, W, C)."""
    x = images if images.ndim == 4 else images[None]
    dy = x[:, 1:] - x[:, :-1]
    dx = x[:, :, 1:] - x[:, :, :-1]
    per_image = 0.5 * (jnp.mean(dy ** 2, axis=(1, 2, 3)) + jnp.mean(dx ** 2, axis=(1, 2, 3)))
    return jnp.mean(per_image)


def blend_grams(grams: Sequence[Mapping[str, jax.Array]], weights: Sequence[float] | None = None
                ) -> dict[str, jax.Array]:
    """Mix several styles' Gram targets layer by layer; weights are normalised to sum to 1."""
    if not grams:
        raise ValueError("need at least one style")
    if weights is None:
        weights = [1.0] * len(grams)
    if len(weights) != len(grams):
        raise ValueError(f"{len(weights)} style weights for {len(grams)} styles")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"style weights must be >= 0 with a positive sum, got {list(weights)}")
    total = float(sum(weights))
    return {name: sum((w / total) * g[name] for w, g in zip(weights, grams)) for name in grams[0]}


def style_targets(vgg, styles: Sequence[jax.Array], config: LossConfig,
                  weights: Sequence[float] | None = None) -> dict[str, jax.Array]:
    """Precompute (once) the blended Gram targets of one or more style images (each HxWx3 or 1xHxWx3,
    sizes may differ) for config's style layers."""
    layers = [k for k, _ in config.style_layers]
    grams = []
    for style in styles:
        feats = vgg(style if style.ndim == 4 else style[None], layers)
        grams.append({name: gram_matrix(feats[name])[0] for name in layers})
    return blend_grams(grams, weights)


def content_targets(vgg, content: jax.Array, config: LossConfig) -> dict[str, jax.Array]:
    layers = [k for k, _ in config.content_layers]
    return vgg(content if content.ndim == 4 else content[None], layers)


def perceptual_loss(vgg, images: jax.Array, content_feats: Mapping[str, jax.Array],
                    target_grams: Mapping[str, jax.Array], config: LossConfig
                    ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """(total, breakdown) for images (B, H, W, 3) in [0, 1] against precomputed targets."""
    x = images if images.ndim == 4 else images[None]
    feats = vgg(x, config.layers)
    content = content_losses(feats, content_feats, config.content)
    style = style_losses(feats, target_grams, config.style)
    tv = config.tv_weight * total_variation(x)
    return summarize(content, style, tv)


def summarize(content: Mapping[str, jax.Array], style: Mapping[str, jax.Array], tv: jax.Array
              ) -> tuple[jax.Array, dict[str, jax.Array]]:
    zero = jnp.zeros((), jnp.float32)
    content_total = sum(content.values(), zero)
    style_total = sum(style.values(), zero)
    total = content_total + style_total + tv
    breakdown = {"total": total, "content": content_total, "style": style_total, "tv": tv}
    breakdown.update({f"content/{k}": v for k, v in content.items()})
    breakdown.update({f"style/{k}": v for k, v in style.items()})
    return total, breakdown
