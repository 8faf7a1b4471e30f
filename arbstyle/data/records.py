"""Turning one image file's bytes into the bytes a dataset stores: verified, 8-bit RGB, upright.

Every builder sends its files through `canonical_image`, so a dataset only ever holds JPEG or PNG bytes that PIL
decodes straight to RGB. That keeps the reading side trivial (no modes, no EXIF, no alpha to think about at
training time) and means a corrupt file is found once, at build time, where it is skipped and counted.
"""
from __future__ import annotations

import hashlib
import io
import math
import warnings
from dataclasses import dataclass, field

from PIL import Image, ImageOps

from arbstyle import images

# Files we try to read; anything else in a folder (README, .DS_Store, csv) is ignored, not counted as corrupt.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

# Re-encoding quality for JPEG sources that have to be rewritten (rotation, CMYK, downscaling): high enough that
# the re-encode is invisible next to the source's own compression.
JPEG_QUALITY = 95

_EXIF_ORIENTATION = 0x0112


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES) and not name.rsplit("/", 1)[-1].startswith(".")


@dataclass(frozen=True)
class Canonical:
    data: bytes
    height: int
    width: int


def canonical_image(data: bytes, name: str, *, max_short_side: int | None = None,
                    max_pixels: int | None = images.DEFAULT_MAX_PIXELS) -> Canonical:
    """Verify and normalise one encoded image; raises images.ImageError('<name>: <problem>') if unusable.

    JPEG/PNG files that are already upright 8-bit RGB and small enough keep their exact bytes (no generation loss);
    everything else is decoded, made RGB (alpha on white, via arbstyle.images), rotated upright, optionally
    downscaled so the short side is at most max_short_side, and re-encoded (JPEG q95 for JPEG sources, else PNG).
    """
    if not data:
        raise images.ImageError(name, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if min(width, height) < images.MIN_SIDE:
                    raise images.ImageError(name, f"image is {width}x{height} pixels; each side must be at least "
                                                  f"{images.MIN_SIDE}")
                if max_pixels is not None and width * height > max_pixels:
                    raise images.ImageError(name, f"image is {width}x{height}, over the limit of "
                                                  f"{max_pixels / 1e6:.0f} MP")
                fmt = img.format
                orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
                shrink = max_short_side is not None and min(width, height) > max_short_side
                keep = (fmt in ("JPEG", "PNG") and img.mode == "RGB" and "transparency" not in img.info
                        and orientation in (1, None) and not shrink and getattr(img, "n_frames", 1) == 1)
                if keep:
                    # A reduced-scale decode still runs every entropy-coded byte, so truncation and corrupt
                    # scans are caught at a fraction of the cost of a full decode.
                    if fmt == "JPEG":
                        img.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                    img.load()
                    return Canonical(data, height, width)
                if shrink and fmt == "JPEG":
                    scale = max_short_side / min(width, height)
                    img.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
                img.load()
                upright = ImageOps.exif_transpose(img) or img
                rgb = images.to_uint8(images.to_float32(upright))
    except images.ImageError:
        raise
    except Image.DecompressionBombError:
        raise images.ImageError(name, "over PIL's pixel limit (possible decompression bomb)") from None
    except Image.UnidentifiedImageError:
        raise images.ImageError(name, "not an image file (or an unsupported format)") from None
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except Exception as err:  # noqa: BLE001  (PIL raises OSError, SyntaxError, ValueError, struct.error, ...)
        text = " ".join(str(err).split())
        problem = "truncated file" if "truncated" in text.lower() else "corrupt or unreadable image"
        raise images.ImageError(name, f"{problem} ({type(err).__name__}: {text})") from None
    pil = Image.fromarray(rgb)
    if max_short_side is not None and min(pil.size) > max_short_side:
        scale = max_short_side / min(pil.size)
        target = (max(1, round(pil.size[0] * scale)), max(1, round(pil.size[1] * scale)))
        pil = pil.resize(target, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if fmt == "JPEG":
        pil.save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    else:
        pil.save(buffer, format="PNG", compress_level=6)
    return Canonical(buffer.getvalue(), pil.size[1], pil.size[0])


@dataclass
class SkipLog:
    """Files left out of a split and why: the count goes into the dataset's metadata and the build summary."""

    limit: int = 1000  # reasons kept per split; the count is always exact
    counts: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, list[str]] = field(default_factory=dict)

    def add(self, split: str, reason: str) -> None:
        self.counts[split] = self.counts.get(split, 0) + 1
        kept = self.reasons.setdefault(split, [])
        if len(kept) < self.limit:
            kept.append(reason)

    def total(self) -> int:
        return sum(self.counts.values())


def stable_fraction(text: str) -> float:
    """A number in [0, 1) fixed by `text` alone (same on every machine and Python), for deterministic splits."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64

