"""Frechet Inception Distance (Heusel et al. 2017) with the network and preprocessing FID was defined with.

Features are `pool_3` of TensorFlow's 2015 Inception graph (our InceptionV3 through Mixed_7c with the max-pool
branch, weights from `arbstyle.weights.inception_fid`), averaged over the 8x8 grid: 2048 numbers per image.
The graph's own preprocessing is reproduced: pixel values 0..255, TF1 `ResizeBilinear` to 299x299 (source
pixel = dest * in/out: align_corners=False without the half-pixel offset, no antialiasing; what the graph did,
aliasing included), then (x - 128) / 128, so inputs span [-1, 0.9921875], not [-1, 1].
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from arbstyle.progress import Progress

FID_SIZE = 299
FEATURE_DIM = 2048


def resize_bilinear_tf1(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """TensorFlow 1's ResizeBilinear (align_corners=False, half_pixel_centers=False): out[i] samples in[i * in/out]."""
    image = np.asarray(image, np.float32)
    out_h, out_w = size

    def axis_weights(n_in, n_out):
        src = np.arange(n_out, dtype=np.float32) * np.float32(n_in / n_out)  # float32, as TF computes it
        lo = np.floor(src).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, src - np.floor(src)

    y0, y1, wy = axis_weights(image.shape[0], out_h)
    x0, x1, wx = axis_weights(image.shape[1], out_w)
    # TF's order of operations (top/bottom lerps along x, then along y), so that float32 rounding matches too
    top, bottom = image[y0], image[y1]
    wx = wx[None, :, None]
    top = top[:, x0] + (top[:, x1] - top[:, x0]) * wx
    bottom = bottom[:, x0] + (bottom[:, x1] - bottom[:, x0]) * wx
    return top + (bottom - top) * wy[:, None, None]


def fid_preprocess(image: np.ndarray) -> np.ndarray:
    """HxWx3 float image in [0, 1] -> 299x299x3 float32 network input, as the 2015 FID graph prepares it."""
    image = np.asarray(image, np.float32)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {image.shape}")
    pixels = resize_bilinear_tf1(image * 255.0, (FID_SIZE, FID_SIZE))
    return (pixels - 128.0) / 128.0


def _default_weights() -> Mapping[str, np.ndarray]:
    # the weights manager: cache, sha256 records, fetch on first use
    from arbstyle.weights.pretrained import load_arrays

    return load_arrays("inception-v3")


class InceptionFeatures:
    """pool_3 features (N, 2048) of images, batched through a jitted InceptionV3 (BN in inference mode)."""

    def __init__(self, weights: Mapping[str, np.ndarray] | None = None, batch_size: int = 8):
        import jax
        from flax import nnx

        from arbstyle.weights import inception_fid

        self.batch_size = batch_size
        self.model = inception_fid.build(weights if weights is not None else _default_weights())
        graphdef, state = nnx.split(self.model)

        @jax.jit
        def pool3(state, x):
            net = nnx.merge(graphdef, state)
            return net(x).mean(axis=(1, 2))  # 8x8 grid at 299 px: the graph's 8x8 average pool

        self._state = state
        self._pool3 = pool3

    def features_of_inputs(self, inputs: np.ndarray) -> np.ndarray:
        """Features of already preprocessed (N, 299, 299, 3) inputs."""
        n = len(inputs)
        out = np.empty((n, FEATURE_DIM), np.float32)
        for start in range(0, n, self.batch_size):
            chunk = np.asarray(inputs[start:start + self.batch_size], np.float32)
            pad = self.batch_size - len(chunk)  # one compiled shape for every batch
            if pad:
                chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), np.float32)])
            out[start:start + self.batch_size] = np.asarray(self._pool3(self._state, chunk))[: self.batch_size - pad]
        return out

    def __call__(self, images: Iterable[np.ndarray], progress: bool = False) -> np.ndarray:
        """Features of HxWx3 float images in [0, 1] (any sizes)."""
        images = list(images)
        batches = []
        with Progress(len(images), desc="FID features", unit="img", quiet=not progress) as bar:
            for start in range(0, len(images), self.batch_size):
                part = images[start:start + self.batch_size]
                batches.append(self.features_of_inputs(np.stack([fid_preprocess(im) for im in part])))
                bar.update(len(part))
        return np.concatenate(batches) if batches else np.zeros((0, FEATURE_DIM), np.float32)

    def of_files(self, paths: Sequence[str | Path], progress: bool = True) -> np.ndarray:
        """Features of image files, loaded with arbstyle.images (bad files raise ImageError naming the file)."""
        from arbstyle.images import load_image

        feats = []
        with Progress(len(paths), desc="FID features", unit="img", quiet=not progress) as bar:
            for start in range(0, len(paths), self.batch_size):
                batch = [fid_preprocess(load_image(p)) for p in paths[start:start + self.batch_size]]
                feats.append(self.features_of_inputs(np.stack(batch)))
                bar.update(len(batch))
        return np.concatenate(feats) if feats else np.zeros((0, FEATURE_DIM), np.float32)


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of (N, D) features, in float64."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need at least 2 feature vectors of shape (N, D), got {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^1/2), the Frechet distance of two Gaussians.

    tr((S1 S2)^1/2) = tr((S1^1/2 S2 S1^1/2)^1/2): the right side is a symmetric PSD matrix, so two symmetric
    eigen-decompositions give it exactly, with no complex parts to discard (unlike a general sqrtm of S1 S2).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}")
    root1 = _sqrt_psd(sigma1)
    inner = root1 @ sigma2 @ root1
    eig = np.linalg.eigvalsh((inner + inner.T) / 2)
    tr_covmean = np.sqrt(np.clip(eig, 0, None)).sum()
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean, 0.0))


def fid_from_features(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID of two feature sets (N, D). With no more samples than dimensions (the usual case for a style set),
    computed exactly in sample space: with A = centred features / sqrt(N - 1), S = A^T A, so
    tr S = ||A||_F^2 and tr (S1 S2)^1/2 = ||A1 A2^T||_* (its singular values), costing N^2 D instead of D^3."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"need two (N >= 2, D) feature sets of the same D, got {a.shape} and {b.shape}")
    if max(len(a), len(b)) > a.shape[1]:
        return frechet_distance(*statistics(a), *statistics(b))
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    ca, cb = (a - mu_a) / np.sqrt(len(a) - 1), (b - mu_b) / np.sqrt(len(b) - 1)
    nuclear = np.linalg.svd(ca @ cb.T, compute_uv=False).sum()
    diff = mu_a - mu_b
    return float(max(diff @ diff + np.sum(ca * ca) + np.sum(cb * cb) - 2 * nuclear, 0.0))
