"""Per-image preprocessing for training: decode, short-side resize, crops, flips and Magenta's colour jitter.

Every random choice comes from an explicit `np.random.Generator`, so the pipeline is a pure function of
(seed, index). All of it runs on 8-bit PIL images (fast, antialiased, and the colour ops clip to [0, 255] as Magenta's uint8 ops
did); the pipeline converts to float32 [0, 1] only at the end.

Magenta's `arbitrary_style_image_inputs` jitters colour on the full decoded image and then resizes and crops; we
crop first and jitter the crop. Brightness, saturation and hue act on each pixel alone, so on the pixels that
survive the crop this differs only by the resize's interpolation happening before rather than after the jitter,
and it costs a crop's worth of colour conversions instead of a painting's.
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


@dataclass(frozen=True)
class ColorJitter:
    """Magenta's style augmentation: tf.image.random_brightness(0.8), random_saturation(0.5, 1.5) and
    random_hue(0.2), on 8-bit images as Magenta applied them (so values clip to [0, 255] after each op).

    Runs as PIL lookup tables in HSV space: ~1 ms for a 256 px crop, against ~35 ms for the same in float numpy,
    which made the colour jitter the slowest step of the whole pipeline. PIL's HSV is 8 bits per channel, so a hue
    shift is quantised to 1/256 of a turn (at most about 3 levels of 255 in RGB; tests compare with a float
    reference).
    """

    brightness: float = 0.8
    saturation: tuple[float, float] = (0.5, 1.5)
    hue: float = 0.2

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        delta = rng.uniform(-self.brightness, self.brightness) if self.brightness else 0.0
        factor = rng.uniform(*self.saturation) if self.saturation else 1.0
        shift = rng.uniform(-self.hue, self.hue) if self.hue else 0.0
        levels = np.arange(256, dtype=np.float64)
        if delta:
            img = img.point(_lut(levels + delta * 255.0) * 3)
        if factor != 1.0 or shift:
            hue, sat, val = img.convert("HSV").split()
            sat = sat.point(_lut(levels * factor))
            hue = hue.point(((np.arange(256) + round(shift * 256)) % 256).tolist())
            img = Image.merge("HSV", (hue, sat, val)).convert("RGB")
        return img


def _lut(values: np.ndarray) -> list[int]:
    return np.clip(np.round(values), 0, 255).astype(np.int64).tolist()


def random_flips(img: Image.Image, rng: np.random.Generator, *, vertical: bool = True) -> Image.Image:
    """Left-right with p=1/2 and, for styles, up-down with p=1/2 (tf.image.random_flip_*)."""
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if vertical and rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    return img
