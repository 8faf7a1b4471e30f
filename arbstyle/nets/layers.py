"""Building blocks shared by the networks: convolutions without bias, batch norm without scale, CIN."""
from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

CIN_EPSILON = 1e-5  # Magenta's conditional_style_norm
BN_EPSILON = 1e-3  # slim.batch_norm's default, used by both Inception and the transformer's contract layers


class ShapesOnly:
    """The key `arbstyle.model.abstract_module` hands out: its modules are filled from weights afterwards, so only
    the variables' shapes matter, and `kernel_init` gives zeros for this key."""


_LECUN_NORMAL = nnx.initializers.lecun_normal()  # nnx.Conv's and nnx.Linear's own default


def kernel_init(key, shape, dtype=jnp.float32):
    """nnx's default kernel initialiser (LeCun normal) for every convolution and linear layer here, but zeros for a
    `ShapesOnly` key: under `nnx.eval_shape` a truncated normal traces some 40 operations per kernel, which made
    most of an abstract build (0.42 s of a ghiasi-inception load on the quiet 2-core Xeon)."""
    if isinstance(key, ShapesOnly):
        return jnp.zeros(shape, dtype)
    return _LECUN_NORMAL(key, shape, dtype)


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def batch_norm(channels: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
    """slim.batch_norm as the papers' models use it: a learned offset, no scale (the next conv absorbs it)."""
    return nnx.BatchNorm(channels, use_scale=False, epsilon=BN_EPSILON, momentum=0.99, rngs=rngs)


def instance_stats(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-sample, per-channel mean and (biased) variance over the spatial axes, in float32."""
    x = x.astype(jnp.float32)
    mean = jnp.mean(x, axis=(1, 2))
    var = jnp.mean(jnp.square(x - mean[:, None, None, :]), axis=(1, 2))
    return mean, var


def conditional_instance_norm(x, gamma, beta, mean=None, var=None, epsilon: float = CIN_EPSILON):
    """Dumoulin et al. 2017: instance-normalise, then scale and shift with per-sample (B, C) gamma and beta.

    `mean`/`var` (B, C) may be given instead of computed from `x`: tiled inference passes whole-image statistics.
    """
    if mean is None:
        mean, var = instance_stats(x)
    scale = gamma * jax.lax.rsqrt(var + epsilon)
    shift = beta - mean * scale
    return (x * scale[:, None, None, :].astype(x.dtype) + shift[:, None, None, :].astype(x.dtype))


# XLA:CPU runs a convolution with fewer output channels than this much slower than one with this many: the
# transformer's last layer (9x9, 8 -> 3 channels at full resolution) took 40% of a forward pass. Computing it with
# zero kernels up to 8 outputs and dropping them took the whole 384 px forward from 62 to 57 ms (docs/performance.md).
MIN_CONV_OUTPUTS = 8


class ReflectConv(nnx.Module):
    """Magenta's model_util.conv2d: reflect-pad by kernel//2, then a VALID convolution without bias."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, *, rngs: nnx.Rngs, dtype=None):
        self.pad = kernel // 2
        self.conv = nnx.Conv(in_ch, out_ch, (kernel, kernel), strides=stride, padding="VALID", use_bias=False,
                             dtype=dtype, kernel_init=kernel_init, rngs=rngs)

    def __call__(self, x):
        p = self.pad
        if p:
            x = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")
        conv = self.conv
        if conv.out_features >= MIN_CONV_OUTPUTS:
            return conv(x)
        kernel = conv.kernel[...]
        kernel = jnp.pad(kernel, ((0, 0),) * 3 + ((0, MIN_CONV_OUTPUTS - conv.out_features),))
        dtype = conv.dtype or jnp.promote_types(x.dtype, kernel.dtype)
        strides = (conv.strides,) * 2 if isinstance(conv.strides, int) else tuple(conv.strides)
        y = jax.lax.conv_general_dilated(x.astype(dtype), kernel.astype(dtype), strides, "VALID",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=conv.precision)
        return y[..., :conv.out_features]


def upsample_nearest(x, factor: int = 2):
    b, h, w, c = x.shape
    x = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, factor, w, factor, c))
    return x.reshape(b, h * factor, w * factor, c)


class ConvBN(nnx.Module):
    """slim.conv2d as Inception uses it: conv without bias, batch norm without scale (eps 1e-3), ReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel, stride: int = 1, padding: str = "SAME", *,
                 rngs: nnx.Rngs):
        kh, kw = _pair(kernel)
        if padding == "SAME":  # TF's SAME with stride 1 is symmetric for odd kernels; stride-2 convs here are VALID
            padding = ((kh // 2, kh // 2), (kw // 2, kw // 2))
        self.conv = nnx.Conv(in_ch, out_ch, (kh, kw), strides=stride, padding=padding, use_bias=False,
                             kernel_init=kernel_init, rngs=rngs)
        self.bn = batch_norm(out_ch, rngs)

    def __call__(self, x):
        return jax.nn.relu(self.bn(self.conv(x)))
