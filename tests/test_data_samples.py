"""Tiny real image collections for the data tests: tiles of the photographs that ship with scikit-image.

Imported by the other test_data_* modules (pytest puts this folder on sys.path); its own tests check that the
samples are what the data tests assume: real, distinct, colour, and as small as asked.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import skimage
from PIL import Image

SKIMAGE_DATA = Path(os.path.dirname(skimage.__file__)) / "data"
COLOR_FILES = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg", "ihc.png",
               "retina.jpg", "motorcycle_left.png", "color.png")
GRAY_FILES = ("camera.png", "coins.png", "moon.png", "brick.png", "grass.png", "gravel.png")


def real_images(count: int, *, short_side: int = 48, files=COLOR_FILES) -> list[tuple[str, Image.Image]]:
    """`count` distinct RGB images: square-ish tiles from different places of scikit-image's photos."""
    out = []
    tile = 0
    while len(out) < count:
        for name in files:
            if len(out) == count:
                break
            with Image.open(SKIMAGE_DATA / name) as src:
                img = src.convert("RGB")
            w, h = img.size
            side = int(min(w, h) * 0.6)
            width = min(w, int(side * (1.3 if tile % 2 else 1.0)))  # some landscape tiles, some square
            # Successive tiles walk across the photo, so every tile shows different content.
            left = int(((0.1 + 0.37 * tile) % 1.0) * (w - width))
            top = int(((0.8 - 0.29 * tile) % 1.0) * (h - side))
            crop = img.crop((left, top, left + width, top + side))
            scale = short_side / min(crop.size)
            crop = crop.resize((max(short_side, round(crop.size[0] * scale)),
                                max(short_side, round(crop.size[1] * scale))), Image.Resampling.LANCZOS)
            out.append((f"{Path(name).stem}_{tile}", crop))
        tile += 1
    return out


def encode(img: Image.Image, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def truncated_jpeg() -> bytes:
    data = encode(real_images(1, short_side=64)[0][1])
    return data[: len(data) // 2]


def write_folder(root: Path, images: list[tuple[str, Image.Image]], fmt: str = "JPEG") -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    suffix = ".jpg" if fmt == "JPEG" else ".png"
    paths = []
    for name, img in images:
        path = root / f"{name}{suffix}"
        path.write_bytes(encode(img, fmt))
        paths.append(path)
    return paths


def test_real_images_are_distinct_colour_tiles():
    images = real_images(12, short_side=40)
    assert len({name for name, _ in images}) == 12
    arrays = [np.asarray(img) for _, img in images]
    assert all(a.ndim == 3 and a.shape[2] == 3 and min(a.shape[:2]) == 40 for a in arrays)
    # Real photographs: colourful and textured, not flat fills.
    assert all(a.std() > 10 for a in arrays)
    means = {tuple(np.round(a.mean(axis=(0, 1)))) for a in arrays}
    assert len(means) == 12


def test_truncated_jpeg_does_not_decode():
    import pytest

    with pytest.raises(OSError):
        Image.open(io.BytesIO(truncated_jpeg())).load()
