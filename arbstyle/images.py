"""Robust image I/O: every image that enters or leaves arbstyle goes through here.

Loading returns float32 HxWx3 arrays in [0, 1] whatever the file holds (EXIF rotation applied, any PIL mode,
16-bit scaled, alpha composited on white), and turns every way a file can be bad into one `ImageError` line
that names the file. Saving is atomic: a temp file in the destination folder, fsync, then os.replace, so an
interrupted run never leaves a half-written image under the final name.
"""
from __future__ import annotations

import math
import os
import re
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps

# Smallest accepted side. The transformer downsamples by 4 and then reflect-pads by 1 (3x3 convs), which needs
# at least 2 pixels per side at that resolution: 4 * 2 = 8. Below that there is also nothing to stylize, and a
# 1x1 image has zero variance, which instance normalization cannot normalize.
MIN_SIDE = 8

# Largest accepted image, from the header, before any pixel is decoded: 2**27 = 134 MP (about 11585^2) is
# 1.6 GB as float32 RGB, comfortably inside a 24 GB machine with a model running, and below PIL's own
# decompression-bomb error threshold (2 x 89.5 MP) so that our clearer message fires first.
DEFAULT_MAX_PIXELS = 2**27

SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
PNG_COMPRESS_LEVEL = 1

# Temporary files of atomic writes are `.<name>.<8 random characters>.tmp` (tempfile.mkstemp) beside the
# target. A process killed with SIGKILL cannot remove its own; later writes of the same name remove those older
# than this process (a newer one may belong to a run still writing).
_STARTED = time.time()
_TEMP_RANDOM = re.compile(r"[a-z0-9_]{8}")


class ImageError(ValueError):
    """A bad image file or argument; str() is one line: '<path>: <problem>'."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = " ".join(str(problem).split())  # one line, always
        super().__init__(f"{self.path}: {self.problem}")


def _describe(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _check_size(path, size: tuple[int, int], max_pixels: int | None) -> None:
    width, height = size
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ImageError(path, f"image is {width}x{height} pixels; each side must be at least {MIN_SIDE}")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError(
            path,
            f"image is {width}x{height} = {width * height / 1e6:.1f} MP, over the limit of {max_pixels / 1e6:.1f} MP "
            f"(possible decompression bomb; raise max_pixels if the image is genuine)",
        )


def _pil_to_float(img: Image.Image) -> np.ndarray:
    """Any PIL mode -> float32 HxWx3 in [0, 1]; transparency composited on white."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        gray = np.asarray(img).astype(np.float32) / 65535.0
        return np.repeat(gray[..., None], 3, axis=-1)
    if mode == "I":
        # 32-bit integer images come from 16-bit PNG/TIFF in practice: values 0..65535.
        gray = np.clip(np.asarray(img).astype(np.float32) / 65535.0, 0.0, 1.0)
        return np.repeat(gray[..., None], 3, axis=-1)
    if mode == "F":
        gray = np.asarray(img).astype(np.float32)
        gray = np.nan_to_num(gray, nan=0.0, posinf=0.0, neginf=0.0)
        top = float(gray.max()) if gray.size else 0.0
        scale = 1.0 if top <= 1.0 else 255.0 if top <= 255.0 else 65535.0 if top <= 65535.0 else top
        gray = np.clip(gray / scale, 0.0, 1.0)
        return np.repeat(gray[..., None], 3, axis=-1)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info) or (
        mode in ("L", "RGB") and "transparency" in img.info
    )
    if has_alpha:
        rgba = np.asarray(img.convert("RGBA")).astype(np.float32) / 255.0
        alpha = rgba[..., 3:4]
        return rgba[..., :3] * alpha + (1.0 - alpha)  # on white
    # CMYK uses PIL's ICC-less conversion; YCbCr, LAB, HSV, 1, L, P likewise convert directly.
    return np.multiply(np.asarray(img.convert("RGB")), np.float32(1.0 / 255.0), dtype=np.float32)


def center_square(arr):
    """The centred square of side min(H, W) of an image (a view, no copy)."""
    h, w = arr.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return arr[top:top + side, left:left + side]


def load_image(path, *, max_side: int | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS,
               square: int | None = None) -> np.ndarray:
    """Read an image file as float32 HxWx3 in [0, 1].

    max_side: if given, downscale (antialiased, aspect kept) so that the longer side is at most max_side;
    JPEGs are decoded at reduced scale first, which saves time and memory on huge photos.
    square: if given, crop the centred square first and resize it to `square` x `square`, so that memory
    follows the square, not the image's aspect ratio (a 100000 x 8 strip is 8 x 8 before it is resized).
    max_pixels: header pixel count above which the file is refused before decoding (None: no limit of ours;
    PIL's own bomb limit, 2 x Image.MAX_IMAGE_PIXELS = 179 MP by default, still applies).
    Raises ImageError (one line naming the file) for every unusable input.
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(path, "no such file")
    if path.is_dir():
        raise ImageError(path, "is a directory, not an image file")
    try:
        if path.stat().st_size == 0:
            raise ImageError(path, "empty file (0 bytes)")
    except OSError as err:
        raise ImageError(path, f"cannot read: {err.strerror or err}") from None
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Some other library switched PIL to silently grey-fill truncated files; we refuse to hide them.
        warnings.warn("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set: truncated images may decode silently",
                      RuntimeWarning, stacklevel=2)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we apply our own limit
            with Image.open(path) as img:
                _check_size(path, img.size, max_pixels)
                if img.format == "JPEG" and (max_side is not None or square is not None):
                    scale = max_side / max(img.size) if max_side is not None else square / min(img.size)
                    if scale < 1.0:
                        img.draft("RGB", (math.ceil(img.size[0] * scale), math.ceil(img.size[1] * scale)))
                img.load()  # full decode now: truncated or corrupt data raises here, never turns grey later
                img = ImageOps.exif_transpose(img) or img
                # the size the rest of the program sees, after rotation (and a JPEG's reduced-scale decode)
                _check_size(path, img.size, max_pixels)
                if square is not None:
                    side = min(img.size)
                    left, top = (img.size[0] - side) // 2, (img.size[1] - side) // 2
                    img = img.crop((left, top, left + side, top + side))
                arr = _pil_to_float(img)
    except ImageError:
        raise
    except Image.DecompressionBombError as err:
        # PIL refuses above 2 x Image.MAX_IMAGE_PIXELS in Image.open itself, before our own check can run.
        raise ImageError(path, f"over PIL's pixel limit, refused as a possible decompression bomb ({err})") from None
    except Image.UnidentifiedImageError:
        raise ImageError(path, "not an image file (or an unsupported format)") from None
    except PermissionError as err:
        raise ImageError(path, f"permission denied: {err.strerror or err}") from None
    except MemoryError:
        raise ImageError(path, "out of memory while decoding") from None
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as err:  # noqa: BLE001  (PIL raises OSError, SyntaxError, ValueError, struct.error, ...)
        problem = "truncated file" if "truncated" in str(err).lower() else "corrupt or unreadable image"
        raise ImageError(path, f"{problem} ({_describe(err)})") from None
    if square is not None:
        return resize_to(arr, (square, square))
    if max_side is not None and max(arr.shape[:2]) > max_side:
        arr = resize_long(arr, max_side)
    return arr


def image_size(path, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) as `load_image` would return it (EXIF rotation applied), from the header alone."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                orientation = img.getexif().get(0x0112, 1)
    except Image.DecompressionBombError as err:
        raise ImageError(path, f"over PIL's pixel limit, refused as a possible decompression bomb ({err})") from None
    except FileNotFoundError:
        raise ImageError(path, "no such file") from None
    except Exception as err:  # noqa: BLE001  (PIL's many ways to fail on a header)
        raise ImageError(path, f"not a readable image ({_describe(err)})") from None
    size = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    _check_size(path, size, max_pixels)
    return size


def to_float32(image) -> np.ndarray:
    """A PIL image or an array (uint8 0..255, or float in [0, 1]; HxW, HxWx1, HxWx3, HxWx4) -> float32 HxWx3."""
    if isinstance(image, Image.Image):
        return _pil_to_float(image)
    arr = np.asarray(image)
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        arr = arr.astype(np.float32) / 65535.0
    else:
        arr = arr.astype(np.float32)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
        raise ValueError(f"expected an HxW, HxWx1, HxWx3 or HxWx4 image, got shape {arr.shape}")
    if arr.shape[-1] == 4:
        alpha = arr[..., 3:4]
        arr = arr[..., :3] * alpha + (1.0 - alpha)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return np.clip(arr, 0.0, 1.0)


def to_uint8(arr) -> np.ndarray:
    """Float image in [0, 1] (values outside are clipped) -> uint8, rounded; uint8 input is returned as is."""
    arr = np.asarray(arr)
    if arr.dtype == np.uint8:
        return arr
    return (np.clip(arr.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def resize_to(arr, size: tuple[int, int]) -> np.ndarray:
    """Antialiased resize of a float HxWxC image to (h, w): PIL's Lanczos on each channel in float32 ("F") mode,
    so no 8-bit rounding, clipped back to [0, 1] (Lanczos rings slightly)."""
    arr = np.asarray(arr, dtype=np.float32)
    height, width = int(size[0]), int(size[1])
    if height < 1 or width < 1:
        raise ValueError(f"resize target must be positive, got {size}")
    if arr.shape[:2] == (height, width):
        return arr
    squeeze = arr.ndim == 2
    chans = arr[..., None] if squeeze else arr
    out = np.empty((height, width, chans.shape[-1]), dtype=np.float32)
    for c in range(chans.shape[-1]):
        channel = Image.fromarray(np.ascontiguousarray(chans[..., c]))  # float32 2-D: mode "F"
        out[..., c] = np.asarray(channel.resize((width, height), Image.Resampling.LANCZOS))
    np.clip(out, 0.0, 1.0, out=out)
    return out[..., 0] if squeeze else out


def _scaled(shape, side: int, ref: int) -> tuple[int, int]:
    height, width = shape[:2]
    scale = side / ref
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_short(arr, size: int) -> np.ndarray:
    """Resize so that the shorter side is `size`, aspect ratio kept."""
    arr = np.asarray(arr, dtype=np.float32)
    return resize_to(arr, _scaled(arr.shape, size, min(arr.shape[:2])))


def resize_long(arr, size: int) -> np.ndarray:
    """Resize so that the longer side is `size`, aspect ratio kept."""
    arr = np.asarray(arr, dtype=np.float32)
    return resize_to(arr, _scaled(arr.shape, size, max(arr.shape[:2])))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# What open() would give a new file or folder under the user's umask; mkstemp/mkdtemp make 0600/0700, and an atomic
# write renames its temporary, so without this every output would be private to its owner.
FILE_MODE = 0o666 & ~_umask()
FOLDER_MODE = 0o777 & ~_umask()


def temp_file(path: Path, suffix: str = ".tmp") -> tuple[int, str]:
    """mkstemp beside `path` under the name pattern that `remove_stale_temps` recognises, with the user's normal
    file permissions."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.chmod(name, FILE_MODE)
    return fd, name


def remove_stale_temps(*paths) -> int:
    """Delete temp files of interrupted atomic writes of these targets (our name pattern only, and only those
    older than this process); one listing per folder. Returns how many were removed."""
    by_folder: dict[Path, set[str]] = {}
    for path in map(Path, paths):
        by_folder.setdefault(path.parent, set()).add(path.name)
    removed = 0
    for folder, names in by_folder.items():
        try:
            entries = list(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            parts = entry.name.split(".")  # "", <name parts...>, <random>, "tmp"
            if (len(parts) < 4 or parts[0] or parts[-1] != "tmp" or not _TEMP_RANDOM.fullmatch(parts[-2])
                    or ".".join(parts[1:-2]) not in names):
                continue
            try:
                if entry.is_file() and not entry.is_symlink() and entry.stat().st_mtime < _STARTED:
                    entry.unlink()
                    removed += 1
            except OSError:
                pass  # gone already, or not ours to remove
    return removed


def check_writable(path) -> None:
    """Refuse, before any work, an output file that could not be written: its folder (or the nearest folder
    that exists, where the missing ones would be created) must take a new file. Nothing is left behind."""
    path = Path(path)
    if path.is_dir():
        raise ImageError(path, "is a folder; give an output file name")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ImageError(path, f"cannot write: {folder} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".arbstyle-write-check.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ImageError(path, f"cannot write in {folder}: {err.strerror or err}") from None


def save_image(image, path, *, quality: int = 95) -> Path:
    """Write a float [0, 1] or uint8 array, or a PIL image, to `path` atomically; format from the extension.

    The parent folder is created. The image goes to a temp file in the same folder, is fsynced, then renamed over
    `path`; on any exception (Ctrl-C included) the temp file is removed and `path` is untouched.
    """
    path = Path(path)
    fmt = SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(path, f"unsupported output extension {path.suffix or '(none)'!r}; use .png, .jpg or .webp")
    if isinstance(image, Image.Image):
        pil = image if image.mode in ("RGB", "L") else Image.fromarray(to_uint8(_pil_to_float(image)))
    else:
        pil = Image.fromarray(to_uint8(to_float32(image)))
    options = {"quality": int(quality)} if fmt in ("JPEG", "WEBP") else {}
    if fmt == "JPEG":
        options["subsampling"] = 0 if quality >= 90 else 2  # keep chroma detail at high quality
    if fmt == "PNG":
        # zlib level 1: a 1024x1024 stylized photo encodes in 0.08 s against 0.40 s at PIL's default 6, for 13 %
        # more bytes; the pixels are the same lossless ones, and the encode was a quarter of a one-image CLI run.
        options["compress_level"] = PNG_COMPRESS_LEVEL
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ImageError(path, f"cannot create output folder: {err.strerror or err}") from None
    remove_stale_temps(path)
    tmp_name = None
    try:
        fd, tmp_name = temp_file(path)
        with os.fdopen(fd, "wb") as handle:
            pil.save(handle, format=fmt, **options)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as err:
        raise ImageError(path, f"cannot write: {err.strerror or err}") from None
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass
    return path
