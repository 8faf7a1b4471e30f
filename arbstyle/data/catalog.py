"""Names -> TFDS builders, and the one-call way to build and open them.

A dataset is named by a spec string, the same one experiment configs use:

    shared_content | shared_paintings | shared_textures      the local ../shared/data folders
    painter_by_numbers[/short512|/original]                  from manual_dir
    dtd[/split1 ... /split10]                                from manual_dir
    imagenet_content | coco_content[/2017|/2014]             from manual_dir
    image_folder/<config name>                               an image folder dataset already built
    /any/folder  ./rel/folder  ~/folder                      an ad-hoc image folder (split 'train')

`load(spec)` builds the dataset into data_dir the first time (array_record, no TensorFlow) and returns the
prepared builder; `builder.as_data_source(split)` then gives random access for grain. Image-folder datasets are
rebuilt automatically when their folder changes (added, removed or modified files).
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
from pathlib import Path

import tensorflow_datasets as tfds

from arbstyle import paths
from arbstyle.data import image_folder
from arbstyle.data.base import skipped_counts
from arbstyle.data.coco import CocoContent
from arbstyle.data.dtd import Dtd
from arbstyle.data.image_folder import ImageFolder, ImageFolderConfig
from arbstyle.data.imagenet import ImagenetContent
from arbstyle.data.painter_by_numbers import PainterByNumbers

log = logging.getLogger("arbstyle.data")


class _QuietTfds(logging.Filter):
    """Drops three absl warnings that TFDS emits on every normal use of these builders and that would bury real
    warnings: configs passed as objects ("custom data configuration"), a version folder TFDS probes before it
    writes it, and the suggestion to install OpenCV (we decode with PIL on purpose)."""

    NOISE = ("Using custom data configuration", "Variant folder", "OpenCV is not installed")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.NOISE)


_absl = logging.getLogger("absl")
if not any(isinstance(f, _QuietTfds) for f in _absl.filters):
    _absl.addFilter(_QuietTfds())

BUILDERS = {cls.name: cls for cls in (ImageFolder, PainterByNumbers, Dtd, ImagenetContent, CocoContent)}

# The local training set: dataset name -> {split: folder under shared/data}.
SHARED = {
    "shared_content": {"train": "train/content", "val": "val/content"},
    "shared_paintings": {"train": "train/paintings", "val": "val/styles"},
    "shared_textures": {"train": "train/textures"},
}


def default_data_dir() -> Path:
    """Where datasets are built unless told otherwise: $ARBSTYLE_TFDS_DIR, else <arbstyle cache>/tfds
    (the cache honours $ARBSTYLE_HOME)."""
    env = os.environ.get("ARBSTYLE_TFDS_DIR")
    path = Path(env).expanduser() if env else paths.cache_dir() / "tfds"
    path.mkdir(parents=True, exist_ok=True)
    return path


def shared_data_root() -> Path:
    root = paths.shared_dir()
    if root is None or not (root / "data").is_dir():
        raise FileNotFoundError("shared/data: not found beside the checkout (set ARBSTYLE_SHARED to its parent)")
    return root / "data"


def shared_config(name: str) -> ImageFolderConfig:
    root = shared_data_root()
    splits = {split: root / rel for split, rel in SHARED[name].items()}
    return image_folder.folder_config(name, splits, description=f"arbstyle shared data: {SHARED[name]}")


def is_path_spec(spec: str) -> bool:
    return spec.startswith(("/", "./", "../", "~")) or os.sep in spec and Path(spec).expanduser().is_dir()


def parse_spec(spec: str) -> tuple[str, str | None, str | None]:
    """'name[/config][:split]' -> (name, config, split); a folder path[:split] -> ('path', folder, split)."""
    if is_path_spec(spec):
        if Path(spec).expanduser().is_dir():
            return "path", spec, None
        # The split may hold colons itself ("train[:50%]"): cut at the first colon that leaves a folder.
        for at in (i for i, ch in enumerate(spec) if ch == ":"):
            if Path(spec[:at]).expanduser().is_dir():
                return "path", spec[:at], spec[at + 1:]
        return "path", spec, None
    name_part, _, split = spec.partition(":")
    name, _, config = name_part.partition("/")
    return name, (config or None), (split or None)


def without_split(spec: str) -> tuple[str, str | None]:
    """'dtd/split2:test' -> ('dtd/split2', 'test'); '/a/folder:train[:10]' -> ('/a/folder', 'train[:10]')."""
    name, config, split = parse_spec(spec)
    if name == "path":
        return config, split
    return (f"{name}/{config}" if config else name), split


def get_builder(spec: str | ImageFolderConfig, *, data_dir: str | os.PathLike | None = None
                ) -> tfds.core.DatasetBuilder:
    """The builder for a spec (nothing is built or read yet)."""
    data_dir = str(Path(data_dir).expanduser()) if data_dir else str(default_data_dir())
    if isinstance(spec, ImageFolderConfig):
        return ImageFolder(data_dir=data_dir, config=spec)
    name, config, _ = parse_spec(spec)
    if name == "path":
        return ImageFolder(data_dir=data_dir, config=image_folder.config_for_path(config))
    if name in SHARED:
        try:
            return ImageFolder(data_dir=data_dir, config=shared_config(name))
        except FileNotFoundError:
            # No ../shared here (another host, a container): a copy built earlier in data_dir still serves.
            if (Path(data_dir) / ImageFolder.name / name).is_dir():
                return _built_image_folder(name, data_dir)
            raise
    if name not in BUILDERS:
        raise ValueError(f"unknown dataset {spec!r}; known: {', '.join(sorted([*SHARED, *BUILDERS]))} or a folder path")
    if name == ImageFolder.name:
        if not config:
            raise ValueError("image_folder needs a config name (image_folder/<name>) or use a folder path")
        return _built_image_folder(config, data_dir)
    return BUILDERS[name](data_dir=data_dir, config=config)


def _built_image_folder(config_name: str, data_dir: str) -> tfds.core.DatasetBuilder:
    # An image-folder config that was built earlier by path: reopen it from its files on disk.
    folder = Path(data_dir) / ImageFolder.name / config_name
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no image_folder dataset named {config_name!r} has been built here")
    versions = [p for p in folder.iterdir() if p.is_dir() and re.fullmatch(r"\d+\.\d+\.\d+", p.name)]
    if not versions:
        raise FileNotFoundError(f"{folder}: no built version of image_folder/{config_name}")
    newest = max(versions, key=lambda p: tuple(int(x) for x in p.name.split(".")))
    return tfds.builder_from_directory(str(newest))


@contextlib.contextmanager
def _build_lock(builder: tfds.core.DatasetBuilder):
    """An exclusive lock per dataset variant, so processes that start together (several training processes on
    one host, pytest-xdist workers) build it once: TFDS's final rename would fail for the second builder."""
    lock_path = Path(str(builder.data_path)).parent / f".{Path(str(builder.data_path)).name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _is_stale(builder: tfds.core.DatasetBuilder) -> bool:
    if not builder.is_prepared() or not isinstance(builder.builder_config, ImageFolderConfig):
        return False
    built = builder.info.metadata.get("source_fingerprint") if builder.info.metadata else None
    return built != image_folder.fingerprint(builder.builder_config)


def load(spec: str | ImageFolderConfig, *, data_dir: str | os.PathLike | None = None,
         manual_dir: str | os.PathLike | None = None, rebuild_if_changed: bool = True) -> tfds.core.DatasetBuilder:
    """Build the dataset if it is not in data_dir yet (or its source folder changed), and return the builder.

    manual_dir: where painter_by_numbers / dtd / imagenet_content / coco_content find their archives
    (default: <data_dir>/downloads/manual when it holds anything).
    """
    builder = get_builder(spec, data_dir=data_dir)
    if builder.is_prepared() and not (rebuild_if_changed and _is_stale(builder)):
        return builder
    with _build_lock(builder):
        builder = get_builder(spec, data_dir=data_dir)  # another process may have built it while we waited
        if rebuild_if_changed and _is_stale(builder):
            log.warning("%s: source folder changed since it was built; rebuilding", builder.data_path)
            shutil.rmtree(builder.data_path)
            builder = get_builder(spec, data_dir=data_dir)
        if not builder.is_prepared():
            builder.download_and_prepare(download_config=_download_config(builder, data_dir, manual_dir))
            log.info(summary(builder))
    return builder


def _download_config(builder, data_dir, manual_dir):
    if not builder.MANUAL_DOWNLOAD_INSTRUCTIONS:
        return None
    # TFDS's own default, <data_dir>/downloads/manual, is used when it holds anything.
    default_manual = Path(data_dir or default_data_dir()).expanduser() / "downloads" / "manual"
    if manual_dir is None and default_manual.is_dir() and any(default_manual.iterdir()):
        manual_dir = default_manual
    if manual_dir is None:
        raise FileNotFoundError(f"{builder.name}: not built in {builder.data_dir} and no manual_dir given. "
                                f"{builder.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    manual = Path(manual_dir).expanduser()
    if not manual.is_dir() or not any(manual.iterdir()):
        raise FileNotFoundError(f"{manual}: manual_dir does not exist or is empty")
    return tfds.download.DownloadConfig(manual_dir=str(manual))


def prepare_shared(data_dir: str | os.PathLike | None = None) -> dict[str, tfds.core.DatasetBuilder]:
    """Build (first time) or open the three shared datasets; {name: builder}."""
    return {name: load(name, data_dir=data_dir) for name in SHARED}


def summary(builder: tfds.core.DatasetBuilder) -> str:
    """One line: name, examples per split, unreadable files skipped per split."""
    splits = ", ".join(f"{s} {info.num_examples}" for s, info in sorted(builder.info.splits.items()))
    skipped = skipped_counts(builder)
    total = sum(skipped.values())
    detail = ", ".join(f"{s} {n}" for s, n in sorted(skipped.items()) if n)
    return (f"{builder.name}/{builder.builder_config.name if builder.builder_config else ''} "
            f"{builder.version}: {splits}; {total} unreadable file(s) skipped{f' ({detail})' if detail else ''}")
