"""Per-image preprocessing for training: decode, short-side resize, crops, flips and Magenta's colour jitter.

Everything takes an explicit `np.random.Generator`, so the pipeline is a pure function of (seed, index).
Geometry runs on 8-bit PIL images (fast, antialiased); colour jitter runs on the float32 crop afterwards.

Magenta's `arbitrary_style_image_inputs` jitters colour on the full decoded image and then resizes and crops; we
crop first and jitter the crop. Brightness, saturation and hue act on each pixel alone, so on the pixels that
survive the crop this differs only by the resize's interpolation happening before rather than after the jitter,
and it costs a crop's worth of HSV conversions instead of a painting's.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

RESAMPLE = Image.Resampling.BILINEAR  # antialiased when shrinking (PIL widens the filter support)


def decode(data: bytes, min_short_side: int | None = None) -> Image.Image:
    """Stored dataset bytes -> RGB PIL image. For JPEGs, decode at the smallest DCT scale whose short side is
    still >= min_short_side: big paintings then cost a fraction of a full decode."""
    img = Image.open(io.BytesIO(data))
    if min_short_side and img.format == "JPEG":
        scale = min_short_side / min(img.size)
        if scale < 1.0:
            img.draft("RGB", (math.ceil(img.size[0] * scale), math.ceil(img.size[1] * scale)))
    return img.convert("RGB") if img.mode != "RGB" else img


def resize_short(img: Image.Image, size: int) -> Image.Image:
    width, height = img.size
    scale = size / min(width, height)
    target = (max(size, round(width * scale)), max(size, round(height * scale)))
    return img if target == img.size else img.resize(target, RESAMPLE)


def crop(img: Image.Image, height: int, width: int, rng: np.random.Generator | None) -> Image.Image:
    """A height x width window: uniformly random with rng, centred without. The image must be large enough."""
    w, h = img.size
    if w < width or h < height:
        raise ValueError(f"cannot crop {height}x{width} from a {h}x{w} image")
    if rng is None:
        top, left = (h - height) // 2, (w - width) // 2
    else:
        top, left = int(rng.integers(0, h - height + 1)), int(rng.integers(0, w - width + 1))
    return img.crop((left, top, left + width, top + height))


def to_float(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.float32) * np.float32(1.0 / 255.0)


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """float RGB in [0, 1] -> HSV with hue in [0, 1) (the convention of tf.image.rgb_to_hsv)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    value = rgb.max(axis=-1)
    chroma = value - rgb.min(axis=-1)
    safe_v = np.where(value > 0, value, 1.0)
    saturation = np.where(value > 0, chroma / safe_v, 0.0)
    safe_c = np.where(chroma > 0, chroma, 1.0)
    hue = np.where(value == r, (g - b) / safe_c,
                   np.where(value == g, 2.0 + (b - r) / safe_c, 4.0 + (r - g) / safe_c))
    hue = np.where(chroma > 0, (hue / 6.0) % 1.0, 0.0)
    return np.stack([hue, saturation, value], axis=-1).astype(np.float32)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    # The standard piecewise-linear form: channel k peaks where the hue sextant puts it.
    k = (np.stack([5.0 + h * 6.0, 3.0 + h * 6.0, 1.0 + h * 6.0], axis=-1)) % 6.0
    weight = np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return (v[..., None] - (v * s)[..., None] * weight).astype(np.float32)


@dataclass(frozen=True)
class ColorJitter:
    """Magenta's style augmentation: tf.image.random_brightness(0.8), random_saturation(0.5, 1.5),
    random_hue(0.2), each followed by the clip to [0, 1] that its uint8 round trip implied."""

    brightness: float = 0.8
    saturation: tuple[float, float] = (0.5, 1.5)
    hue: float = 0.2

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        delta = rng.uniform(-self.brightness, self.brightness) if self.brightness else 0.0
        factor = rng.uniform(*self.saturation) if self.saturation else 1.0
        shift = rng.uniform(-self.hue, self.hue) if self.hue else 0.0
        out = np.clip(image + np.float32(delta), 0.0, 1.0)
        if factor != 1.0 or shift != 0.0:
            hsv = rgb_to_hsv(out)
            hsv[..., 1] = np.clip(hsv[..., 1] * np.float32(factor), 0.0, 1.0)
            hsv[..., 0] = (hsv[..., 0] + np.float32(shift)) % 1.0
            out = np.clip(hsv_to_rgb(hsv), 0.0, 1.0)
        return out.astype(np.float32, copy=False)


def random_flips(image: np.ndarray, rng: np.random.Generator, *, vertical: bool = True) -> np.ndarray:
    """Left-right with p=1/2 and, for styles, up-down with p=1/2 (tf.image.random_flip_*)."""
    if rng.random() < 0.5:
        image = image[:, ::-1]
    if vertical and rng.random() < 0.5:
        image = image[::-1]
    return np.ascontiguousarray(image)
