"""The TFDS builders, each on a tiny real collection laid out like the original (folder, zip + csv, tarballs)."""
from __future__ import annotations

import csv
import io
import os
import shutil
import sys
import tarfile
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from arbstyle import data
from arbstyle.data import dtd as dtd_module
from arbstyle.data import painter_by_numbers as pbn
from test_data_samples import SKIMAGE_DATA, encode, real_images, truncated_jpeg, write_folder


def _rows(builder, split):
    source = builder.as_data_source(split)
    return [source[i] for i in range(len(source))]


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@pytest.fixture()
def messy_folder(tmp_path):
    """Two labelled subfolders, top-level images, odd modes, three broken files and a non-image file."""
    root = tmp_path / "collection"
    photos = real_images(5, short_side=40)
    write_folder(root / "cats", photos[:2])
    write_folder(root / "dogs", photos[2:4], fmt="PNG")
    write_folder(root, photos[4:])
    shutil.copy(SKIMAGE_DATA / "camera.png", root / "dogs" / "gray.png")  # 8-bit grey
    shutil.copy(SKIMAGE_DATA / "logo.png", root / "cats" / "logo.png")  # RGBA
    (root / "cats" / "truncated.jpg").write_bytes(truncated_jpeg())
    (root / "dogs" / "not_an_image.jpg").write_text("this is text, not a JPEG")
    (root / "empty.png").write_bytes(b"")
    (root / "README.txt").write_text("ignored: not an image suffix")
    return root, photos


def test_image_folder_labels_pixels_and_skipped_files(messy_folder, tmp_path):
    root, photos = messy_folder
    builder = data.load(str(root), data_dir=tmp_path / "tfds")
    assert builder.name == "image_folder" and builder.info.file_format.value == "array_record"
    assert "tensorflow" not in sys.modules

    rows = _rows(builder, "train")
    by_name = {_text(r["filename"]): r for r in rows}
    assert sorted(by_name) == sorted([
        "collection/cats/astronaut_0.jpg", "collection/cats/chelsea_0.jpg", "collection/cats/logo.png",
        "collection/dogs/coffee_0.png", "collection/dogs/rocket_0.png", "collection/dogs/gray.png",
        "collection/hubble_deep_field_0.jpg"])
    labels = {name: _text(r["label"]) for name, r in by_name.items()}
    assert labels["collection/cats/logo.png"] == "cats"
    assert labels["collection/dogs/gray.png"] == "dogs"
    assert labels["collection/hubble_deep_field_0.jpg"] == "collection"  # top level: the folder's own name

    # Lossless sources come back pixel for pixel; odd modes become 3-channel uint8.
    png = by_name["collection/dogs/coffee_0.png"]["image"]
    np.testing.assert_array_equal(png, np.asarray(photos[2][1]))
    gray = by_name["collection/dogs/gray.png"]["image"]
    assert gray.shape == (512, 512, 3) and gray.dtype == np.uint8
    np.testing.assert_array_equal(gray[..., 0], np.asarray(Image.open(SKIMAGE_DATA / "camera.png")))
    logo = by_name["collection/cats/logo.png"]["image"]
    assert logo.shape[2] == 3 and logo.max() == 255  # alpha composited on white

    skipped = data.skipped_counts(builder)
    assert skipped == {"train": 3}
    reasons = " | ".join(builder.info.metadata["skipped_reasons"]["train"])
    for bad in ("truncated.jpg: truncated file", "not_an_image.jpg: not an image file", "empty.png: empty file"):
        assert bad in reasons
    assert "3 unreadable file(s) skipped" in data.summary(builder)


def test_image_folder_is_reused_and_rebuilt_when_the_folder_changes(tmp_path):
    root = tmp_path / "styles"
    write_folder(root, real_images(3, short_side=32))
    first = data.load(str(root), data_dir=tmp_path / "tfds")
    assert first.info.splits["train"].num_examples == 3
    stamp = os.stat(first.data_path / "dataset_info.json").st_mtime_ns
    again = data.load(str(root), data_dir=tmp_path / "tfds")
    assert os.stat(again.data_path / "dataset_info.json").st_mtime_ns == stamp  # reused, not rebuilt
    write_folder(root, [("extra", real_images(4, short_side=32)[3][1])])
    rebuilt = data.load(str(root), data_dir=tmp_path / "tfds")
    assert rebuilt.info.splits["train"].num_examples == 4


def test_image_folder_record_order_is_stable_across_builds(tmp_path):
    root = tmp_path / "content"
    write_folder(root, real_images(6, short_side=32))
    a = _rows(data.load(str(root), data_dir=tmp_path / "a"), "train")
    b = _rows(data.load(str(root), data_dir=tmp_path / "b"), "train")
    assert [r["filename"] for r in a] == [r["filename"] for r in b]
    assert [r["filename"] for r in a] != sorted(r["filename"] for r in a) or len(a) < 3  # TFDS shuffled the keys


def test_folder_config_with_named_splits_and_downscaling(tmp_path):
    write_folder(tmp_path / "tr", real_images(3, short_side=60))
    write_folder(tmp_path / "va", real_images(4, short_side=60)[3:])
    config = data.folder_config("mini", {"train": tmp_path / "tr", "val": tmp_path / "va"}, max_short_side=24)
    builder = data.load(config, data_dir=tmp_path / "tfds")
    assert {s: i.num_examples for s, i in builder.info.splits.items()} == {"train": 3, "val": 1}
    assert builder.data_path.parts[-3:] == ("image_folder", "mini", "1.0.0")
    assert all(min(r["image"].shape[:2]) == 24 for r in _rows(builder, "train"))
    # Reopened by name once built.
    assert data.get_builder("image_folder/mini", data_dir=tmp_path / "tfds").info.splits["val"].num_examples == 1


def test_unknown_and_missing_inputs_fail_with_one_line(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        data.get_builder("nope", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="no manual_dir given"):
        data.load("dtd", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="image folder does not exist"):
        data.load(data.folder_config("gone", {"train": tmp_path / "missing"}), data_dir=tmp_path)
    (tmp_path / "manual").mkdir()
    (tmp_path / "manual" / "unrelated.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="no DTD tarball found"):
        data.load("dtd", data_dir=tmp_path, manual_dir=tmp_path / "manual")


# ---- Painter by Numbers ---------------------------------------------------------------------------------------

def _artists(count: int, fraction: float, heldout: bool) -> list[str]:
    names = (f"Painter {i}" for i in range(1000))
    return [n for n in names if pbn.is_heldout(n, fraction) == heldout][:count]


def test_painter_by_numbers_zip_csv_holds_out_whole_artists(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    fraction = 0.5
    train_artists, test_artists = _artists(2, fraction, False), _artists(2, fraction, True)
    images = real_images(8, short_side=40)
    columns = ["artist", "date", "genre", "pixelsx", "pixelsy", "size_bytes", "source", "style", "title",
               "artist_group", "in_train", "new_filename"]
    rows = []
    with zipfile.ZipFile(manual / "train.zip", "w") as archive:
        for i, (name, img) in enumerate(images[:6]):
            filename = f"{1000 + i}.jpg"
            archive.writestr(f"train/{filename}", encode(img))
            artist = (train_artists + test_artists)[i % 4]
            rows.append({"artist": artist, "date": "1890", "genre": "landscape", "pixelsx": img.size[0],
                         "pixelsy": img.size[1], "size_bytes": 0, "source": "wikiart", "style": f"Style {i % 3}",
                         "title": name, "artist_group": "train_and_test", "in_train": "True",
                         "new_filename": filename})
        archive.writestr("train/9998.jpg", truncated_jpeg())  # in the csv, but broken
        rows.append({**rows[0], "new_filename": "9998.jpg"})
        archive.writestr("train/9999.jpg", encode(images[6][1]))  # no csv row
        rows.append({**rows[1], "new_filename": "not_in_zip.jpg"})  # csv row without a file: just unused
    with open(manual / "all_data_info.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)

    config = pbn.PainterByNumbersConfig(name="half", version="1.0.0", heldout_artist_fraction=fraction,
                                        max_short_side=32)
    builder = data.PainterByNumbers(data_dir=str(tmp_path / "tfds"), config=config)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))

    train, test = _rows(builder, "train"), _rows(builder, "test")
    assert len(train) + len(test) == 6
    assert {_text(r["artist"]) for r in train} == set(train_artists)
    assert {_text(r["artist"]) for r in test} == set(test_artists)
    by_file = {_text(r["filename"]): r for r in train + test}
    assert _text(by_file["1002.jpg"]["style"]) == "Style 2" and _text(by_file["1002.jpg"]["title"]) == images[2][0]
    assert all(min(r["image"].shape[:2]) == 32 for r in train + test)  # stored downscaled
    assert data.skipped_counts(builder) == {"train": 2, "test": 0}
    reasons = " ".join(builder.info.metadata["skipped_reasons"]["train"])
    assert "train.zip!train/9999.jpg: no row in all_data_info.csv" in reasons
    assert "train.zip!train/9998.jpg: truncated file" in reasons


# ---- DTD -------------------------------------------------------------------------------------------------------

def _add(archive: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    archive.addfile(info, io.BytesIO(payload))


def test_dtd_official_tarball_layout(tmp_path):
    manual = tmp_path / "manual" / "dtd"  # the builder also looks in manual_dir/<name>
    manual.mkdir(parents=True)
    categories = ["banded", "cracked", "zigzagged"]
    images = real_images(9, short_side=32)
    split_of = {}
    with tarfile.open(manual / dtd_module.TARBALL, "w:gz") as archive:
        _add(archive, "dtd/imdb/imdb.mat", b"not used")
        for i, (_, img) in enumerate(images):
            category = categories[i % 3]
            rel = f"{category}/{category}_{i:04d}.jpg"
            _add(archive, f"dtd/images/{rel}", encode(img))
            split_of[rel] = ("train", "val", "test")[i // 3]
        _add(archive, "dtd/images/banded/banded_0100.jpg", b"\xff\xd8 broken jpeg")
        split_of["banded/banded_0100.jpg"] = "train"
        for prefix in ("train", "val", "test"):  # label lists after the images, as a stream must cope with
            listed = "\n".join(rel for rel, s in split_of.items() if s == prefix) + "\n"
            _add(archive, f"dtd/labels/{prefix}1.txt", listed.encode())
            _add(archive, f"dtd/labels/{prefix}2.txt", b"")  # another partition: ignored

    builder = data.load("dtd", data_dir=tmp_path / "tfds", manual_dir=tmp_path / "manual")
    assert builder.builder_config.name == "split1"
    label_names = builder.info.features["label"].names
    assert len(label_names) == 47
    for split, prefix in (("train", "train"), ("validation", "val"), ("test", "test")):
        rows = _rows(builder, split)
        assert sorted(_text(r["filename"]) for r in rows) == sorted(
            rel for rel, s in split_of.items() if s == prefix and "0100" not in rel)
        for r in rows:
            assert label_names[int(r["label"])] == _text(r["filename"]).split("/")[0]
    assert data.skipped_counts(builder) == {"train": 1, "validation": 0, "test": 0}


# ---- ImageNet and COCO content --------------------------------------------------------------------------------

def test_imagenet_content_nested_train_tar_and_val_tar(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    images = real_images(7, short_side=32)
    synsets = ["n01440764", "n02102040"]
    with tarfile.open(manual / "ILSVRC2012_img_train.tar", "w") as outer:
        for s, synset in enumerate(synsets):
            inner_bytes = io.BytesIO()
            with tarfile.open(fileobj=inner_bytes, mode="w") as inner:
                for i in range(2):
                    _add(inner, f"{synset}_{i}.JPEG", encode(images[2 * s + i][1]))
                if s == 1:
                    _add(inner, f"{synset}_9.JPEG", truncated_jpeg())
            _add(outer, f"{synset}.tar", inner_bytes.getvalue())
    with tarfile.open(manual / "ILSVRC2012_img_val.tar", "w") as val:
        for i in range(3):
            _add(val, f"ILSVRC2012_val_{i + 1:08d}.JPEG", encode(images[4 + i][1]))
    (manual / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\nILSVRC2012_val_00000001,n02102040 1 2 3 4\n"
        "ILSVRC2012_val_00000002,n01440764 5 6 7 8\n")

    builder = data.load("imagenet_content", data_dir=tmp_path / "tfds", manual_dir=manual)
    train = _rows(builder, "train")
    assert sorted((_text(r["label"]), _text(r["filename"])) for r in train) == sorted(
        (s, f"{s}/{s}_{i}.JPEG") for s in synsets for i in range(2))
    val = {_text(r["filename"]): _text(r["label"]) for r in _rows(builder, "validation")}
    assert val == {"ILSVRC2012_val_00000001.JPEG": "n02102040", "ILSVRC2012_val_00000002.JPEG": "n01440764",
                   "ILSVRC2012_val_00000003.JPEG": ""}
    assert data.skipped_counts(builder) == {"train": 1, "validation": 0}


def test_coco_content_zips(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    images = real_images(4, short_side=32)
    with zipfile.ZipFile(manual / "train2017.zip", "w") as archive:
        archive.writestr("train2017/", b"")
        for i, (_, img) in enumerate(images[:3]):
            archive.writestr(f"train2017/{i * 37 + 9:012d}.jpg", encode(img))
    with zipfile.ZipFile(manual / "val2017.zip", "w") as archive:
        archive.writestr("val2017/000000000139.jpg", encode(images[3][1]))
    builder = data.load("coco_content", data_dir=tmp_path / "tfds", manual_dir=manual)
    assert sorted(int(r["image_id"]) for r in _rows(builder, "train")) == [9, 46, 83]
    assert [int(r["image_id"]) for r in _rows(builder, "validation")] == [139]
    np.testing.assert_array_equal(  # JPEG bytes are stored untouched: decoding gives the source's pixels
        _rows(builder, "validation")[0]["image"], np.asarray(Image.open(io.BytesIO(encode(images[3][1])))))


# ---- the shared training set ------------------------------------------------------------------------------------

@pytest.mark.shared
def test_prepare_shared_builds_every_shared_folder(shared, tmp_path):
    builders = data.prepare_shared(data_dir=tmp_path / "tfds")
    assert set(builders) == {"shared_content", "shared_paintings", "shared_textures"}
    for name, builder in builders.items():
        for split, rel in data.SHARED[name].items():
            files = [p for p in (shared / "data" / rel).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
            built = builder.info.splits[split].num_examples
            assert built + data.skipped_counts(builder).get(split, 0) == len(files)
