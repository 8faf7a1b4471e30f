"""`dtd`: the Describable Textures Dataset (Cimpoi et al. 2014) from its official tarball.

Reads `dtd-r1.0.1.tar.gz` from manual_dir as a stream (it is never extracted): one pass collects the official
split lists (`dtd/labels/{train,val,test}<k>.txt`), then one pass per split reads its images. Labels are the 47
texture categories, taken from the folder each image sits in (`dtd/images/<category>/...`).
"""
from __future__ import annotations

import dataclasses
import tarfile
from pathlib import PurePosixPath

import tensorflow_datasets as tfds

from arbstyle.data import records
from arbstyle.data.base import Candidate, ImageBuilder, find_manual_file

NAME = "dtd"
TARBALL = "dtd-r1.0.1.tar.gz"
CATEGORIES = (
    "banded", "blotchy", "braided", "bubbly", "bumpy", "chequered", "cobwebbed", "cracked", "crosshatched",
    "crystalline", "dotted", "fibrous", "flecked", "freckled", "frilly", "gauzy", "grid", "grooved", "honeycombed",
    "interlaced", "knitted", "lacelike", "lined", "marbled", "matted", "meshed", "paisley", "perforated", "pitted",
    "pleated", "polka-dotted", "porous", "potholed", "scaly", "smeared", "spiralled", "sprinkled", "stained",
    "stratified", "striped", "studded", "swirly", "veined", "waffled", "woven", "wrinkled", "zigzagged",
)
SPLITS = {"train": "train", "validation": "val", "test": "test"}  # TFDS split name -> DTD file prefix


@dataclasses.dataclass(eq=False)
class DtdConfig(tfds.core.BuilderConfig):
    split_index: int = 1  # DTD ships 10 train/val/test partitions; the paper's numbers use the first


class Dtd(ImageBuilder, skip_registration=True):
    """DTD textures with the official partition `split_index` as train/validation/test."""

    name = NAME
    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [DtdConfig(name=f"split{i}", version="1.0.0", split_index=i,
                                 description=f"Official partition {i} of 10.") for i in range(1, 11)]
    DESCRIPTION = "Describable Textures Dataset: 5640 texture images in 47 categories."
    HOMEPAGE = "https://www.robots.ox.ac.uk/~vgg/data/dtd/"
    CITATION = ("@InProceedings{cimpoi14describing, title={Describing Textures in the Wild}, author={Cimpoi, M. "
                "and Maji, S. and Kokkinos, I. and Mohamed, S. and Vedaldi, A.}, booktitle={CVPR}, year={2014}}")
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        f"Download {TARBALL} from https://www.robots.ox.ac.uk/~vgg/data/dtd/ into manual_dir "
        "(or manual_dir/dtd)."
    )

    def _label_features(self):
        return {"label": tfds.features.ClassLabel(names=CATEGORIES)}

    def _candidates(self, dl_manager):
        tarball = find_manual_file(dl_manager, NAME, (TARBALL,), "DTD tarball")
        lists = _split_lists(tarball, self.builder_config.split_index)
        return {split: self._split(tarball, lists[prefix]) for split, prefix in SPLITS.items()}

    def _split(self, tarball, wanted: set[str]):
        with tarfile.open(tarball, mode="r|*") as archive:
            for member in archive:
                rel = _image_rel(member.name)
                if rel is None or rel not in wanted or not member.isfile():
                    continue
                category = rel.split("/", 1)[0]
                data = archive.extractfile(member).read()  # streamed in order: bytes now, decoding on the pool
                yield Candidate(key=rel, name=f"{tarball.name}!{member.name}", filename=rel, read=data,
                                labels={"label": category})


def _image_rel(member_name: str) -> str | None:
    """'dtd/images/banded/banded_0002.jpg' -> 'banded/banded_0002.jpg' (the form the split lists use)."""
    parts = PurePosixPath(member_name).parts
    if "images" not in parts or not records.is_image_name(member_name):
        return None
    rel = parts[parts.index("images") + 1:]
    if len(rel) != 2 or rel[0] not in CATEGORIES:
        return None
    return "/".join(rel)


def _split_lists(tarball, index: int) -> dict[str, set[str]]:
    wanted = {f"{prefix}{index}.txt": prefix for prefix in SPLITS.values()}
    found: dict[str, set[str]] = {}
    with tarfile.open(tarball, mode="r|*") as archive:
        for member in archive:
            name = PurePosixPath(member.name)
            if member.isfile() and name.parent.name == "labels" and name.name in wanted:
                text = archive.extractfile(member).read().decode("utf-8")
                found[wanted[name.name]] = {line.strip() for line in text.splitlines() if line.strip()}
    missing = sorted(set(wanted) - {f"{p}{index}.txt" for p in found})
    if missing:
        raise ValueError(f"{tarball}: no dtd/labels/{', '.join(missing)} (is this the official {TARBALL}?)")
    return found
