"""`painter_by_numbers`: Kaggle's Painter by Numbers paintings (the style set of Ghiasi et al. 2017).

Reads the competition's `train.zip` (or its parts `train_1.zip` ... `train_9.zip`) and `all_data_info.csv` from
manual_dir, without extracting: members are read straight from the zip. Labels are the csv's artist, style and
genre. Splits hold out whole artists, so `test` measures generalisation to painters never seen in training:
an artist goes to `test` when a hash of the name falls under `heldout_artist_fraction`, which is the same on every
machine and independent of which images are present.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import zipfile
from pathlib import PurePosixPath

import tensorflow_datasets as tfds

from arbstyle.data import records
from arbstyle.data.base import Candidate, ImageBuilder, find_manual_file

NAME = "painter_by_numbers"
CSV_NAME = "all_data_info.csv"
ZIP_NAMES = ("train.zip",) + tuple(f"train_{i}.zip" for i in range(1, 10))


@dataclasses.dataclass(eq=False)
class PainterByNumbersConfig(tfds.core.BuilderConfig):
    heldout_artist_fraction: float = 0.1
    # Most PBN paintings are far larger than any training crop; storing them at 512 px (short side) keeps the
    # dataset ~10x smaller and decoding fast, while leaving room for Magenta's random resize up to 256 + 200.
    max_short_side: int | None = 512


def is_heldout(artist: str, fraction: float) -> bool:
    return records.stable_fraction(f"pbn-artist:{artist}") < fraction


class PainterByNumbers(ImageBuilder, skip_registration=True):
    """Painter by Numbers (Kaggle) with artist/style/genre labels and held-out-artist test split."""

    name = NAME
    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [
        PainterByNumbersConfig(name="short512", version="1.0.0", max_short_side=512,
                               description="Short side capped at 512 px; 10% of artists held out."),
        PainterByNumbersConfig(name="original", version="1.0.0", max_short_side=None,
                               description="Original files; 10% of artists held out."),
    ]
    DESCRIPTION = "Painter by Numbers (Kaggle, 2016): paintings from WikiArt with artist, style and genre."
    HOMEPAGE = "https://www.kaggle.com/c/painter-by-numbers"
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Download `train.zip` (or train_1.zip ... train_9.zip) and `all_data_info.csv` from "
        "https://www.kaggle.com/c/painter-by-numbers/data into manual_dir (or manual_dir/painter_by_numbers)."
    )

    def _label_features(self):
        return {"artist": tfds.features.Text(), "style": tfds.features.Text(), "genre": tfds.features.Text(),
                "title": tfds.features.Text()}

    def _candidates(self, dl_manager):
        csv_path = find_manual_file(dl_manager, NAME, (CSV_NAME,), "Painter by Numbers metadata")
        zips = [p for name in ZIP_NAMES for p in _present(dl_manager, name)]
        if not zips:
            raise FileNotFoundError(f"{dl_manager.manual_dir}: no train.zip or train_<n>.zip for Painter by Numbers")
        rows = _read_rows(csv_path)
        fraction = self.builder_config.heldout_artist_fraction
        return {"train": self._split(zips, rows, fraction, heldout=False),
                "test": self._split(zips, rows, fraction, heldout=True)}

    def _split(self, zips, rows, fraction, *, heldout: bool):
        for zip_path in zips:
            archive = zipfile.ZipFile(zip_path)  # ZipFile reads members safely from several threads
            for info in archive.infolist():
                if info.is_dir() or not records.is_image_name(info.filename):
                    continue
                filename = PurePosixPath(info.filename).name
                row = rows.get(filename)
                label = f"{zip_path.name}!{info.filename}"
                if row is None:
                    # Still counted, so a mismatched csv shows up in the build summary instead of vanishing.
                    if not heldout:
                        self._skips.add("train", f"{label}: no row in {CSV_NAME}")
                    continue
                if is_heldout(row["artist"], fraction) != heldout:
                    continue
                yield Candidate(
                    key=filename, name=label, filename=filename,
                    read=(lambda a=archive, i=info: a.read(i)),
                    labels={"artist": row["artist"], "style": row.get("style", ""), "genre": row.get("genre", ""),
                            "title": row.get("title", "")},
                )


def _present(dl_manager, name):
    root = dl_manager.manual_dir
    return [p for p in (root / name, root / NAME / name) if p.exists()][:1]


def _read_rows(csv_path) -> dict[str, dict[str, str]]:
    text = csv_path.read_bytes().decode("utf-8", errors="replace")
    reader = csv.DictReader(io.StringIO(text))
    missing = {"artist", "new_filename"} - set(reader.fieldnames or ())
    if missing:
        raise ValueError(f"{csv_path}: missing column(s) {', '.join(sorted(missing))} (expected Kaggle's {CSV_NAME})")
    return {row["new_filename"]: {k: (v or "") for k, v in row.items()} for row in reader}
