"""`image_folder`: any directory of images as a TFDS dataset (content photos or style images).

One BuilderConfig per collection names its folders per split, e.g. `{'train': ('.../train/content',),
'val': ('.../val/content',)}`. Inside a split folder, the first subfolder level becomes the `label`; images at the
top level take the folder's own name as label. Non-image files (by suffix) are ignored; image files that do not
decode are skipped and counted. The dataset lives at `<data_dir>/image_folder/<config name>/1.0.0`, and records
a fingerprint of the files (names, sizes, mtimes) so `catalog.load` can rebuild it when the folder changes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from pathlib import Path
from typing import Iterator, Mapping

import tensorflow_datasets as tfds

from arbstyle.data import records
from arbstyle.data.base import Candidate, ImageBuilder

NAME = "image_folder"


@dataclasses.dataclass(eq=False)
class ImageFolderConfig(tfds.core.BuilderConfig):
    splits: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    max_short_side: int | None = None  # store downscaled copies (None: the files' own bytes where possible)


def folder_config(name: str, splits: Mapping[str, str | os.PathLike | tuple], *, max_short_side: int | None = None,
                  description: str = "") -> ImageFolderConfig:
    """A config for `name` (a TFDS-safe slug) whose splits map to one folder or a tuple of folders."""
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise ValueError(f"dataset config name {name!r}: use lower-case letters, digits and underscores")
    norm = {split: tuple(str(Path(f).expanduser().resolve()) for f in ((folders,) if isinstance(folders, (str, os.PathLike))
                                                                      else folders))
            for split, folders in splits.items()}
    return ImageFolderConfig(name=name, version="1.0.0", splits=norm, max_short_side=max_short_side,
                             description=description or f"images from {norm}")


def config_for_path(path: str | os.PathLike, *, max_short_side: int | None = None) -> ImageFolderConfig:
    """A stable config for an ad-hoc folder: its name plus a hash of its absolute path, split 'train'."""
    folder = Path(path).expanduser().resolve()
    slug = re.sub(r"[^a-z0-9]+", "_", folder.name.lower()).strip("_") or "folder"
    digest = hashlib.sha256(str(folder).encode()).hexdigest()[:8]
    return folder_config(f"{slug}_{digest}", {"train": folder}, max_short_side=max_short_side)


def _walk_images(folder: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if records.is_image_name(name):
                yield Path(root) / name


def _label(folder: Path, path: Path) -> str:
    rel = path.relative_to(folder)
    return rel.parts[0] if len(rel.parts) > 1 else folder.name


def fingerprint(config: ImageFolderConfig) -> str:
    """Changes when an image file is added, removed, resized or touched in any split folder."""
    digest = hashlib.sha256()
    for split in sorted(config.splits):
        for folder in config.splits[split]:
            folder = Path(folder)
            digest.update(f"{split}\0{folder}\0".encode())
            if not folder.is_dir():
                digest.update(b"<missing>")
                continue
            for path in _walk_images(folder):
                try:
                    stat = path.stat()
                except OSError:
                    continue
                digest.update(f"{path.relative_to(folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


class ImageFolder(ImageBuilder, skip_registration=True):
    """Images from folders; labels from subfolder names."""

    name = NAME
    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIG_CLASS = ImageFolderConfig
    DESCRIPTION = "Images from local folders (arbstyle image_folder)."

    def _label_features(self):
        return {"label": tfds.features.Text()}

    def _candidates(self, dl_manager):
        config = self.builder_config
        if not isinstance(config, ImageFolderConfig) or not config.splits:
            raise ValueError("image_folder needs an ImageFolderConfig naming its folders (see folder_config)")
        for folders in config.splits.values():
            for folder in folders:
                if not Path(folder).is_dir():
                    raise FileNotFoundError(f"{folder}: image folder does not exist")
        self.info.metadata["source_fingerprint"] = fingerprint(config)
        return {split: self._split_candidates(folders) for split, folders in config.splits.items()}

    @staticmethod
    def _split_candidates(folders: tuple[str, ...]) -> Iterator[Candidate]:
        for index, folder in enumerate(map(Path, folders)):
            for path in _walk_images(folder):
                rel = path.relative_to(folder).as_posix()
                yield Candidate(key=f"{index}/{rel}", name=str(path), read=path.read_bytes,
                                filename=f"{folder.name}/{rel}", labels={"label": _label(folder, path)})
