"""The TFDS builder that every arbstyle image dataset derives from.

Subclasses only say where the files are (`_candidates`: one stream of `Candidate`s per split) and what extra
labels each carries (`_label_features`). This class verifies each file with `records.canonical_image` on a
thread pool (PIL releases the GIL while decoding), writes array_record shards, and counts every file it had to
skip, by split, in the dataset's metadata (`builder.info.metadata['skipped']`), with the reasons kept beside it.
Nothing here imports TensorFlow: features are Image (stored bytes, decoded with PIL), Text and Scalar.
"""
from __future__ import annotations

import concurrent.futures
import inspect
import itertools
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from arbstyle import images
from arbstyle.data import records

log = logging.getLogger("arbstyle.data")

FILE_FORMAT = "array_record"


@dataclass
class Candidate:
    """One file that may become an example. `read` is bytes, or a callable returning them (lazy reads run on the
    pool, so folders are read in parallel; archives that must be streamed in order hand over bytes)."""

    key: str  # unique within the split and stable across builds: TFDS orders records by its hash
    name: str  # shown in skip reasons: the path, or archive!member
    read: bytes | Callable[[], bytes]
    labels: dict[str, Any] = field(default_factory=dict)
    filename: str = ""  # stored in the example; defaults to `name`


def _default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


class ImageBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base class: image + filename + subclass labels; corrupt files skipped and counted."""

    # Registered with arbstyle's own catalogue, not TFDS's global one, so that names such as `dtd` never collide
    # with the TFDS community builders of the same name.
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First arbstyle release."}
    DESCRIPTION = ""
    HOMEPAGE = ""
    CITATION = ""
    workers: int = _default_workers()

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        # TFDS's own lookup imports the `importlib_resources` backport, which it only declares for Python < 3.9;
        # the plain source file is all it uses the path for (a checksums file beside it, which we never have).
        return epath.Path(inspect.getfile(cls))

    def __init__(self, **kwargs):
        kwargs.setdefault("file_format", FILE_FORMAT)
        super().__init__(**kwargs)

    # ---- what subclasses provide -------------------------------------------------------------------------
    def _label_features(self) -> dict[str, tfds.features.FeatureConnector]:
        return {}

    def _candidates(self, dl_manager) -> dict[str, Iterable[Candidate]]:
        raise NotImplementedError

    def _max_short_side(self) -> int | None:
        # Builder configs that store downscaled copies say so with a `max_short_side` field.
        return getattr(self.builder_config, "max_short_side", None)

    # ---- TFDS hooks ----------------------------------------------------------------------------------------
    def _info(self) -> tfds.core.DatasetInfo:
        features = {
            "image": tfds.features.Image(shape=(None, None, 3), dtype=np.uint8),
            "filename": tfds.features.Text(),
            **self._label_features(),
        }
        description = self.DESCRIPTION
        if self.builder_config is not None and self.builder_config.description:
            description = f"{description} {self.builder_config.description}".strip()
        return tfds.core.DatasetInfo(
            builder=self,
            description=description,
            features=tfds.features.FeaturesDict(features),
            homepage=self.HOMEPAGE or None,
            citation=self.CITATION or None,
            metadata=tfds.core.MetadataDict(skipped={}, skipped_reasons={}, source_fingerprint=""),
        )

    def _split_generators(self, dl_manager):
        self._skips = records.SkipLog()
        return {split: self._generate_examples(split=split, candidates=cands)
                for split, cands in self._candidates(dl_manager).items()}

    def _generate_examples(self, split: str, candidates: Iterable[Candidate]) -> Iterator[tuple[str, dict]]:
        max_short = self._max_short_side()
        # Storing downscaled copies decodes JPEGs at reduced DCT scale, so huge paintings (PBN has some far above
        # 100 MP) are cheap: only PIL's own decompression-bomb limit (179 MP) still applies then.
        max_pixels = None if max_short else images.DEFAULT_MAX_PIXELS

        def convert(cand: Candidate):
            try:
                data = cand.read() if callable(cand.read) else cand.read
                return cand, records.canonical_image(data, cand.name, max_short_side=max_short, max_pixels=max_pixels)
            except images.ImageError as err:
                return cand, err
            except OSError as err:  # an unreadable file in a folder: skip it like a corrupt one
                return cand, images.ImageError(cand.name, f"cannot read: {err.strerror or err}")

        count = 0
        with concurrent.futures.ThreadPoolExecutor(self.workers) as pool:
            # Bounded windows keep memory flat however large the split, and keep keys in input order.
            it = iter(candidates)
            while chunk := list(itertools.islice(it, 4 * self.workers)):
                for cand, result in pool.map(convert, chunk):
                    if isinstance(result, images.ImageError):
                        self._skips.add(split, str(result))
                        log.warning("skipped %s", result)
                        continue
                    count += 1
                    yield cand.key, {"image": result.data, "filename": cand.filename or cand.name, **cand.labels}
        self._record_skips(split)
        log.info("%s[%s]: %d images written, %d skipped", self.name, split, count, self._skips.counts.get(split, 0))

    def _record_skips(self, split: str) -> None:
        # DatasetInfo metadata is written after all splits are generated, so filling it in here persists it.
        meta = self.info.metadata
        meta["skipped"] = {**meta.get("skipped", {}), split: self._skips.counts.get(split, 0)}
        meta["skipped_reasons"] = {**meta.get("skipped_reasons", {}), split: self._skips.reasons.get(split, [])}


def skipped_counts(builder: tfds.core.DatasetBuilder) -> dict[str, int]:
    """{split: number of files skipped as unreadable} for a built dataset."""
    return dict(builder.info.metadata.get("skipped", {}) if builder.info.metadata else {})


def find_manual_file(dl_manager, builder_name: str, candidates: Iterable[str], what: str):
    """The first of `candidates` present in manual_dir or manual_dir/<builder_name>, else a one-line error."""
    root = dl_manager.manual_dir
    for folder in (root, root / builder_name):
        for name in candidates:
            path = folder / name
            if path.exists():
                return path
    raise FileNotFoundError(f"{root}: no {what} found (looked for {', '.join(candidates)}; "
                            f"see the dataset's MANUAL_DOWNLOAD_INSTRUCTIONS)")
