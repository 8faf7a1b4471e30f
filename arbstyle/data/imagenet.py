"""`imagenet_content`: ILSVRC-2012 photos as content images, read from the official tar files in manual_dir.

`ILSVRC2012_img_train.tar` holds one tar per synset (`n01440764.tar`, ...); both levels are streamed, nothing is
extracted. `ILSVRC2012_img_val.tar` is a flat tar of JPEGs; its synsets come from Kaggle's `LOC_val_solution.csv`
when that file is beside it, else the label is empty (content training needs no labels). A handful of ImageNet
files are CMYK or PNG in disguise: `records.canonical_image` turns them into RGB JPEG/PNG like any other.
"""
from __future__ import annotations

import csv
import io
import tarfile
from pathlib import PurePosixPath

import tensorflow_datasets as tfds

from arbstyle.data import records
from arbstyle.data.base import Candidate, ImageBuilder, find_manual_file

NAME = "imagenet_content"
TRAIN_TAR = "ILSVRC2012_img_train.tar"
VAL_TAR = "ILSVRC2012_img_val.tar"
VAL_LABELS = "LOC_val_solution.csv"


class ImagenetContent(ImageBuilder, skip_registration=True):
    """ImageNet ILSVRC-2012 train/validation images with their synset id as `label`."""

    name = NAME
    VERSION = tfds.core.Version("1.0.0")
    DESCRIPTION = "ILSVRC-2012 (ImageNet) photos for content images; label is the WordNet synset id."
    HOMEPAGE = "https://image-net.org/challenges/LSVRC/2012/"
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        f"Put {TRAIN_TAR} (and optionally {VAL_TAR}, with Kaggle's {VAL_LABELS} for validation labels) from "
        "https://image-net.org/ into manual_dir (or manual_dir/imagenet_content)."
    )

    def _label_features(self):
        return {"label": tfds.features.Text()}

    def _candidates(self, dl_manager):
        splits = {"train": self._train(find_manual_file(dl_manager, NAME, (TRAIN_TAR,), "ImageNet train tar"))}
        try:
            val_tar = find_manual_file(dl_manager, NAME, (VAL_TAR,), "ImageNet validation tar")
        except FileNotFoundError:
            return splits
        labels = {}
        try:
            labels = _val_labels(find_manual_file(dl_manager, NAME, (VAL_LABELS,), "validation labels"))
        except FileNotFoundError:
            pass
        splits["validation"] = self._validation(val_tar, labels)
        return splits

    @staticmethod
    def _train(path):
        with tarfile.open(path, mode="r|*") as outer:
            for member in outer:
                if not member.isfile() or not member.name.endswith(".tar"):
                    continue
                synset = PurePosixPath(member.name).stem
                inner_bytes = outer.extractfile(member).read()  # one synset's tar, ~150 MB at most
                with tarfile.open(fileobj=io.BytesIO(inner_bytes), mode="r:*") as inner:
                    for item in inner:
                        if item.isfile() and records.is_image_name(item.name):
                            rel = f"{synset}/{PurePosixPath(item.name).name}"
                            yield Candidate(key=rel, name=f"{path.name}!{member.name}!{item.name}", filename=rel,
                                            read=inner.extractfile(item).read(), labels={"label": synset})

    @staticmethod
    def _validation(path, labels):
        with tarfile.open(path, mode="r|*") as archive:
            for member in archive:
                if member.isfile() and records.is_image_name(member.name):
                    filename = PurePosixPath(member.name).name
                    yield Candidate(key=filename, name=f"{path.name}!{member.name}", filename=filename,
                                    read=archive.extractfile(member).read(),
                                    labels={"label": labels.get(PurePosixPath(filename).stem, "")})


def _val_labels(path) -> dict[str, str]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not {"ImageId", "PredictionString"} <= set(reader.fieldnames or ()):
            raise ValueError(f"{path}: expected columns ImageId,PredictionString (Kaggle's {VAL_LABELS})")
        return {row["ImageId"]: (row["PredictionString"].split() or [""])[0] for row in reader}
