"""Build-time image checks (records.canonical_image), the catalogue's fallbacks and the `arbstyle data` command."""
from __future__ import annotations

import argparse
import io

import numpy as np
import pytest
from PIL import Image

from arbstyle import data, images
from arbstyle.data import catalog, command, records
from test_data_samples import encode, real_images, truncated_jpeg, write_folder


def _decode(blob: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(blob)))


def test_clean_rgb_jpeg_keeps_its_exact_bytes():
    blob = encode(real_images(1, short_side=40)[0][1])
    out = records.canonical_image(blob, "x.jpg")
    assert out.data is blob and (out.height, out.width) == _decode(blob).shape[:2]


def test_exif_rotated_jpeg_is_stored_upright():
    img = real_images(2, short_side=40)[1][1]  # landscape tile
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=95, exif=exif.tobytes())
    out = records.canonical_image(buffer.getvalue(), "rotated.jpg")
    assert (out.height, out.width) == (img.size[0], img.size[1])  # sides swapped: now portrait
    assert Image.open(io.BytesIO(out.data)).getexif().get(0x0112, 1) == 1


def test_cmyk_and_16bit_become_8bit_rgb():
    rgb = real_images(1, short_side=40)[0][1]
    cmyk = io.BytesIO()
    rgb.convert("CMYK").save(cmyk, format="JPEG", quality=95)
    out = records.canonical_image(cmyk.getvalue(), "cmyk.jpg")
    decoded = _decode(out.data)
    assert decoded.ndim == 3 and decoded.shape[2] == 3 and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - np.asarray(rgb, dtype=int)).mean() < 6
    gray16 = Image.fromarray((np.asarray(rgb.convert("L"), dtype=np.uint16) * 257))
    out16 = records.canonical_image(encode(gray16, "PNG"), "deep.png")
    np.testing.assert_array_equal(_decode(out16.data)[..., 0], np.asarray(rgb.convert("L")))


def _broken_png() -> bytes:
    blob = bytearray(encode(real_images(1, short_side=32)[0][1], "PNG"))
    at = blob.index(b"IDAT") + 40
    blob[at] ^= 0xFF  # one flipped byte: the chunk's CRC no longer matches
    return bytes(blob)


@pytest.mark.parametrize("blob, problem", [
    (b"", "empty file"),
    (_broken_png(), "corrupt or unreadable"),
    (b"plain text", "not an image file"),
])
def test_unusable_bytes_raise_one_line_image_errors(blob, problem):
    with pytest.raises(images.ImageError, match=problem) as err:
        records.canonical_image(blob, "/data/x.jpg")
    assert str(err.value).startswith("/data/x.jpg: ") and "\n" not in str(err.value)


def test_truncated_and_tiny_images_are_refused():
    with pytest.raises(images.ImageError, match="truncated file"):
        records.canonical_image(truncated_jpeg(), "t.jpg")
    with pytest.raises(images.ImageError, match="at least 8"):
        records.canonical_image(encode(Image.new("RGB", (5, 40), "red"), "PNG"), "thin.png")


def test_downscaling_caps_the_short_side():
    img = real_images(1, short_side=100)[0][1]
    out = records.canonical_image(encode(img), "big.jpg", max_short_side=50)
    assert min(out.height, out.width) == 50 and min(_decode(out.data).shape[:2]) == 50


# ---- catalogue -----------------------------------------------------------------------------------------------

def test_shared_names_fall_back_to_a_built_copy_when_shared_is_absent(tmp_path, monkeypatch):
    write_folder(tmp_path / "photos", real_images(2, short_side=32))
    data.load(data.folder_config("shared_content", {"train": tmp_path / "photos"}), data_dir=tmp_path / "tfds")
    monkeypatch.setenv("ARBSTYLE_SHARED", str(tmp_path / "no_such_shared"))
    builder = data.load("shared_content", data_dir=tmp_path / "tfds")
    assert builder.info.splits["train"].num_examples == 2
    with pytest.raises(FileNotFoundError, match="shared/data: not found"):
        data.load("shared_textures", data_dir=tmp_path / "tfds")


def test_parse_spec():
    assert data.parse_spec("painter_by_numbers/original:test") == ("painter_by_numbers", "original", "test")
    assert data.parse_spec("dtd") == ("dtd", None, None)
    assert data.parse_spec("/abs/folder") == ("path", "/abs/folder", None)


def test_parse_spec_folder_with_split(tmp_path):
    assert data.parse_spec(f"{tmp_path}:train[:50%]") == ("path", str(tmp_path), "train[:50%]")
    assert catalog.without_split(f"{tmp_path}:train[:50%]") == (str(tmp_path), "train[:50%]")
    assert catalog.without_split("dtd/split2:test") == ("dtd/split2", "test")


def test_pipeline_config_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="unknown data config key"):
        data.resolve_config({"conten_size": 3})
    write_folder(tmp_path / "c", real_images(2, short_side=32))
    cfg = data.resolve_config({"data_dir": str(tmp_path / "tfds"), "content": str(tmp_path / "c"),
                               "style": str(tmp_path / "c")})
    with pytest.raises(ValueError, match="non-empty split 'val'"):
        data.make_pipeline(cfg, split="val", seed=0, global_batch=2, process_index=0, process_count=1)


def test_processes_starting_together_build_a_dataset_once(tmp_path):
    import subprocess
    import sys
    import time

    write_folder(tmp_path / "photos", real_images(24, short_side=48))
    # Both processes import everything, then wait for "go", so their builds really overlap.
    script = ("import arbstyle, pathlib, sys, time; from arbstyle import data; "
              "pathlib.Path(sys.argv[3] + '.ready').touch(); "
              "[time.sleep(0.01) for _ in iter(lambda: pathlib.Path(sys.argv[4]).exists(), True)]; "
              "b = data.load(sys.argv[1], data_dir=sys.argv[2]); print(b.info.splits['train'].num_examples)")
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "photos"), str(tmp_path / "tfds"),
                               str(tmp_path / f"p{i}"), str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    deadline = time.time() + 120
    while not all((tmp_path / f"p{i}.ready").exists() for i in range(2)) and time.time() < deadline:
        time.sleep(0.05)
    go.touch()
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in results]
    assert [out.split()[-1] for out, _ in results] == ["24", "24"]
    assert sum("Downloading and preparing" in out for out, _ in results) == 1  # one built, the other waited


# ---- the `arbstyle data` command -------------------------------------------------------------------------------

def _run(*argv) -> int:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return command.run(parser.parse_args(list(argv)))


def test_data_command_build_info_preview(tmp_path, capsys):
    write_folder(tmp_path / "c", real_images(4, short_side=40))
    (tmp_path / "c" / "broken.jpg").write_bytes(truncated_jpeg())
    tfds_dir = str(tmp_path / "tfds")
    assert _run("build", str(tmp_path / "c"), "--data-dir", tfds_dir) == 0
    assert "train 4; 1 unreadable file(s) skipped" in capsys.readouterr().out
    assert _run("info", str(tmp_path / "c"), "--data-dir", tfds_dir) == 0
    assert "broken.jpg: truncated file" in capsys.readouterr().out
    out = tmp_path / "grid.png"
    assert _run("preview", "--data-dir", tfds_dir, "--content", str(tmp_path / "c"), "--style", str(tmp_path / "c"),
                "--batch", "3", "--size", "32", "--out", str(out)) == 0
    grid = images.load_image(out)
    assert grid.shape == (64, 96, 3) and grid.std() > 0.05
