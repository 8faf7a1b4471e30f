"""A tiny random-init arbitrary-style model for fast tests of the stylize API, CLI and tiling.

Real architecture (arbstyle.model.build_model), small: the transformer at Magenta's mobile width (alpha 0.25) and an
Inception stem (to MaxPool_5a) as the predictor trunk. Random init gives near-constant embeddings, so the
bottleneck's init is 10x larger, so that different styles give visibly different outputs (otherwise option
tests could pass vacuously).
"""
from __future__ import annotations

import functools

import numpy as np

TEST_STYLE_SIZE = 80  # smallest convenient size for the Inception stem's VALID convolutions


@functools.lru_cache(maxsize=1)
def tiny_model():
    """Built abstractly, then filled with numpy (LeCun-normal kernels, zero biases, unit scales and variances):
    running JAX's initialisers compiles one program per parameter shape, 10-50 s on the shared machine."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from arbstyle.model import build_model

    abstract = nnx.eval_shape(
        lambda: build_model(predictor="inception", alpha=0.25, trunk={"final_endpoint": "MaxPool_5a_3x3"}))
    graphdef, state = nnx.split(abstract)
    rng = np.random.default_rng(0)

    def fill(path, leaf):
        name = getattr(path[-2], "key", None)  # the variable's attribute name; path[-1] is `.value`
        if len(leaf.shape) >= 2:
            fan_in = int(np.prod(leaf.shape[:-1]))
            gain = 10.0 if name == "kernel" and "bottleneck" in jax.tree_util.keystr(path) else 1.0
            return jnp.asarray(gain * rng.standard_normal(leaf.shape) / np.sqrt(fan_in), leaf.dtype)
        return (jnp.ones if name in ("var", "scale") else jnp.zeros)(leaf.shape, leaf.dtype)

    model = nnx.merge(graphdef, jax.tree_util.tree_map_with_path(fill, state))
    model.eval()
    return model


def tiny_stylizer(**kwargs):
    from arbstyle.inference.stylize import Stylizer

    kwargs.setdefault("style_size", TEST_STYLE_SIZE)
    return Stylizer(tiny_model(), name="tiny-random", **kwargs)


def photo(height=48, width=64, seed=0) -> np.ndarray:
    """A smooth, colourful synthetic photo (gradients plus a few blobs), float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([xx / width, yy / height, 0.5 + 0.5 * np.sin((xx + yy) / 7.0)], axis=-1)
    for _ in range(4):
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(4, 12)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))[..., None]
        img = img * (1 - blob) + blob * rng.uniform(0, 1, 3)
    return np.clip(img, 0, 1).astype(np.float32)


def texture(size=96, seed=0) -> np.ndarray:
    """A noisy coloured texture standing in for a painting."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 1, (size // 8, size // 8, 3)).astype(np.float32)
    img = np.kron(base, np.ones((8, 8, 1), np.float32)) + 0.2 * rng.standard_normal((size, size, 3))
    return np.clip(img, 0, 1).astype(np.float32)
