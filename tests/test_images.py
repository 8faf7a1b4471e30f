"""Image I/O: every bad input becomes one ImageError line naming the file; every good one loads correctly."""
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from arbstyle import images
from arbstyle.images import ImageError, load_image, resize_long, resize_short, resize_to, save_image, to_uint8


def _pattern(height=32, width=48):
    """RGB uint8 with a distinct red top-left quadrant, so rotations are visible by content."""
    arr = np.zeros((height, width, 3), np.uint8)
    arr[..., 2] = 200
    arr[: height // 2, : width // 2] = (255, 0, 0)
    return arr


def _expect_error(path, *words, **kwargs):
    with pytest.raises(ImageError) as info:
        load_image(path, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message
    for word in words:
        assert word in message.lower(), message
    return message


# ---------------------------------------------------------------- bad inputs


def test_missing_file(tmp_path):
    _expect_error(tmp_path / "nope.jpg", "no such file")


def test_directory(tmp_path):
    _expect_error(tmp_path, "directory")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    _expect_error(path, "empty")


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a picture\n" * 20)
    _expect_error(path, "not an image")


def test_truncated_jpeg_is_refused_not_grey(tmp_path):
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    _expect_error(path, "truncated")


def test_truncated_png(tmp_path):
    buf = io.BytesIO()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) * 2 // 3])
    _expect_error(path)


@pytest.mark.parametrize("size", [(1, 1), (7, 64), (64, 3)])
def test_too_small(tmp_path, size):
    path = tmp_path / "tiny.png"
    Image.new("RGB", size, (10, 20, 30)).save(path)
    _expect_error(path, f"at least {images.MIN_SIDE}")


def test_smallest_accepted(tmp_path):
    path = tmp_path / "eight.png"
    Image.new("RGB", (images.MIN_SIDE, images.MIN_SIDE), (10, 20, 30)).save(path)
    assert load_image(path).shape == (images.MIN_SIDE, images.MIN_SIDE, 3)


def _png_with_header_only(path, width, height):
    """A syntactically valid PNG whose header claims width x height but holds only a few bytes of data."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def test_huge_header_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    _png_with_header_only(path, 100_000, 100_000)
    _expect_error(path, "limit", "decompression bomb")
    path = tmp_path / "large.png"  # above our default limit, below PIL's: our own check names the size
    _png_with_header_only(path, 12_000, 12_000)
    _expect_error(path, "limit", "12000x12000")


def test_pixel_limit_is_a_parameter(tmp_path):
    path = tmp_path / "medium.png"
    Image.new("RGB", (100, 100)).save(path)
    _expect_error(path, "limit", "100x100", max_pixels=5_000)
    assert load_image(path, max_pixels=10_000).shape == (100, 100, 3)


# ---------------------------------------------------------------- modes and metadata


def test_rgb_png_round_trip_exact(tmp_path):
    arr = _pattern()
    path = tmp_path / "rgb.png"
    Image.fromarray(arr).save(path)
    out = load_image(path)
    assert out.dtype == np.float32 and out.shape == arr.shape
    np.testing.assert_array_equal(to_uint8(out), arr)


def test_exif_orientation_applied_by_content(tmp_path):
    stored = _pattern(32, 48)
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(stored).save(path, quality=95, exif=exif)
    out = to_uint8(load_image(path)).astype(np.float32)
    expected = np.rot90(stored, k=-1).astype(np.float32)  # clockwise
    assert out.shape == expected.shape == (48, 32, 3)
    assert np.abs(out - expected).mean() < 6.0
    # the red quadrant moved from top-left to top-right
    assert out[:12, -8:, 0].mean() > 200 and out[:12, :8, 0].mean() < 60


def test_grayscale(tmp_path):
    path = tmp_path / "gray.png"
    Image.fromarray(np.full((16, 20), 128, np.uint8), mode="L").save(path)
    out = load_image(path)
    assert out.shape == (16, 20, 3)
    np.testing.assert_allclose(out, 128 / 255, atol=1e-6)


def test_sixteen_bit_png_scaled(tmp_path):
    ramp = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")
    out = load_image(path)
    assert out.shape == (32, 32, 3)
    np.testing.assert_allclose(out[..., 0], ramp / 65535.0, atol=1e-6)  # not clipped at 255/65535


def test_rgba_composited_on_white(tmp_path):
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0] = 255  # red everywhere
    rgba[:8, :, 3] = 255  # opaque top half
    rgba[8:, :, 3] = 0  # transparent bottom half
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba).save(path)
    out = load_image(path)
    np.testing.assert_allclose(out[:8], np.broadcast_to([1.0, 0.0, 0.0], (8, 16, 3)), atol=1e-6)
    np.testing.assert_allclose(out[8:], 1.0, atol=1e-6)


def test_palette_with_transparency(tmp_path):
    pal = Image.new("P", (16, 16), 0)
    pal.putpalette([0, 0, 255] + [0, 255, 0] * 255)
    pal.paste(1, (0, 8, 16, 16))
    path = tmp_path / "pal.png"
    pal.save(path, transparency=0)
    out = load_image(path)
    np.testing.assert_allclose(out[:8], 1.0, atol=1e-6)  # transparent index -> white
    np.testing.assert_allclose(out[8:], np.broadcast_to([0.0, 1.0, 0.0], (8, 16, 3)), atol=1e-6)


def test_cmyk_jpeg(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (24, 24), (0, 255, 255, 0)).save(path, quality=95)  # pure red in CMYK
    assert Image.open(path).mode == "CMYK"
    out = load_image(path)
    assert out.shape == (24, 24, 3)
    np.testing.assert_allclose(out.mean(axis=(0, 1)), [1.0, 0.0, 0.0], atol=0.05)


def test_float_tiff(tmp_path):
    path = tmp_path / "float.tif"
    Image.fromarray(np.full((12, 12), 0.25, np.float32)).save(path)
    np.testing.assert_allclose(load_image(path), 0.25, atol=1e-6)


def test_max_side_downscales(tmp_path):
    path = tmp_path / "big.jpg"
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(path)
    out = load_image(path, max_side=100)
    assert out.shape == (75, 100, 3)
    assert load_image(path, max_side=1000).shape == (300, 400, 3)


# ---------------------------------------------------------------- resizing


def test_resize_shapes_and_antialiasing():
    checker = (np.indices((64, 64)).sum(axis=0) % 2).astype(np.float32)
    arr = np.repeat(checker[..., None], 3, axis=-1)
    small = resize_to(arr, (16, 16))
    assert small.shape == (16, 16, 3) and small.dtype == np.float32
    # antialiased: a one-pixel checkerboard averages to flat grey instead of aliasing to black/white
    assert abs(small.mean() - 0.5) < 0.02 and small.std() < 0.05
    wide = np.zeros((30, 60, 3), np.float32)
    assert resize_short(wide, 15).shape == (15, 30, 3)
    assert resize_long(wide, 15).shape == (8, 15, 3)


def test_to_uint8_clips_and_rounds():
    out = to_uint8(np.array([[-0.5, 0.0, 0.5, 1.0, 2.0]], np.float32))
    np.testing.assert_array_equal(out, [[0, 0, 128, 255, 255]])


# ---------------------------------------------------------------- saving


@pytest.mark.parametrize("ext,tol", [(".png", 0), (".jpg", 12), (".jpeg", 12), (".webp", 12)])
def test_save_formats_round_trip(tmp_path, ext, tol):
    arr = _pattern()
    path = tmp_path / "deep" / "folder" / f"out{ext}"  # the folder is created
    save_image(arr.astype(np.float32) / 255.0, path)
    assert Image.open(path).format == images.SAVE_FORMATS[ext]
    back = to_uint8(load_image(path)).astype(int)
    assert np.abs(back - arr).mean() <= tol
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left


def test_save_pil_image(tmp_path):
    path = tmp_path / "pil.png"
    save_image(Image.fromarray(_pattern()), path)
    np.testing.assert_array_equal(to_uint8(load_image(path)), _pattern())


def test_save_unknown_extension(tmp_path):
    with pytest.raises(ImageError, match=r"out\.bmpx: unsupported output extension"):
        save_image(np.zeros((8, 8, 3), np.float32), tmp_path / "out.bmpx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("exc", [KeyboardInterrupt, OSError])
def test_save_is_atomic_on_interrupt(tmp_path, monkeypatch, exc):
    path = tmp_path / "keep.png"
    save_image(np.zeros((8, 8, 3), np.float32), path)
    before = path.read_bytes()

    def exploding_save(self, fp, *args, **kwargs):
        fp.write(b"half a picture")
        raise exc("interrupted mid-write")

    monkeypatch.setattr(Image.Image, "save", exploding_save)
    with pytest.raises(ImageError if exc is OSError else KeyboardInterrupt):
        save_image(np.ones((8, 8, 3), np.float32), path)
    assert path.read_bytes() == before  # old file untouched
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]  # temp file removed
