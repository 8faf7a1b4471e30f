"""`coco_content`: MS-COCO photos as content images, read from the official image zips in manual_dir.

`train2017.zip` / `val2017.zip` (or the 2014 pair, config `2014`) hold `<split><year>/<12-digit id>.jpg`; members are
read straight from the zip on the worker pool. Only images are used: no annotations are needed for content.
"""
from __future__ import annotations

import dataclasses
import re
import zipfile
from pathlib import PurePosixPath

import numpy as np
import tensorflow_datasets as tfds

from arbstyle.data import records
from arbstyle.data.base import Candidate, ImageBuilder, find_manual_file

NAME = "coco_content"


@dataclasses.dataclass(eq=False)
class CocoConfig(tfds.core.BuilderConfig):
    year: str = "2017"


class CocoContent(ImageBuilder, skip_registration=True):
    """MS-COCO train/validation images with their numeric image id."""

    name = NAME
    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [CocoConfig(name="2017", version="1.0.0", year="2017", description="COCO 2017 images."),
                       CocoConfig(name="2014", version="1.0.0", year="2014", description="COCO 2014 images.")]
    DESCRIPTION = "MS-COCO photos for content images (Johnson et al. 2016 trained on COCO 2014 train)."
    HOMEPAGE = "https://cocodataset.org/"
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Put train2017.zip (and optionally val2017.zip), or the 2014 zips for config 2014, from "
        "https://cocodataset.org/#download into manual_dir (or manual_dir/coco_content)."
    )

    def _label_features(self):
        return {"image_id": tfds.features.Scalar(dtype=np.int64)}

    def _candidates(self, dl_manager):
        year = self.builder_config.year
        splits = {"train": self._split(find_manual_file(dl_manager, NAME, (f"train{year}.zip",), "COCO train zip"))}
        try:
            splits["validation"] = self._split(find_manual_file(dl_manager, NAME, (f"val{year}.zip",), "COCO val zip"))
        except FileNotFoundError:
            pass
        return splits

    @staticmethod
    def _split(path):
        archive = zipfile.ZipFile(path)
        for info in archive.infolist():
            if info.is_dir() or not records.is_image_name(info.filename):
                continue
            filename = PurePosixPath(info.filename).name
            digits = re.findall(r"\d+", PurePosixPath(filename).stem)
            yield Candidate(key=filename, name=f"{path.name}!{info.filename}", filename=filename,
                            read=(lambda a=archive, i=info: a.read(i)),
                            labels={"image_id": int(digits[-1]) if digits else -1})
