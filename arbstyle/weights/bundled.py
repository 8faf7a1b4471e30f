"""Weights trained by arbstyle and shipped inside the package, next to this file.

A trained model whose trunk comes from a pinned pretrained artifact (e.g. `ghiasi-inception`, whose Inception-v3
trunk is the `inception-v3` artifact) ships only the rest: the parts a training run changed or started from a
decoder that is not on PyPI. `export` writes those arrays from a training workdir as a compressed npz (plain
arrays, no pickle), named by their model state paths; `convert` is the registry's converter that reads it back.
The file's sha256 is pinned in `arbstyle.weights.pretrained.ARTIFACTS`, so an edited copy is refused.

    arbstyle weights export runs/ghiasi_256 -o arbstyle/weights/ghiasi_inception.npz
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

# Left out of an export: weights another artifact provides (the registry fills them from there).
DEFAULT_EXCLUDE = ("predictor/trunk",)


def model_arrays(model, exclude=DEFAULT_EXCLUDE) -> dict[str, np.ndarray]:
    """Every variable of `model` as {state path: float32 array}, minus the paths under `exclude`."""
    from flax import nnx

    arrays = {}
    for path, var in nnx.to_flat_state(nnx.state(model)):
        key = "/".join(map(str, path))
        if any(key == p or key.startswith(p + "/") for p in exclude):
            continue
        arrays[key] = np.asarray(var.get_value(), np.float32)
    return arrays


def write_npz(arrays: dict[str, np.ndarray], path: Path) -> None:
    """Compressed, atomically (the weights cache's own temp file + rename)."""
    from arbstyle.weights.pretrained import _write_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, lambda f: np.savez_compressed(f, **arrays))


def export(workdir: str | os.PathLike, path: str | os.PathLike, *, step: int | None = None,
           exclude=DEFAULT_EXCLUDE) -> dict[str, np.ndarray]:
    """A training workdir's model (newest checkpoint unless `step`), minus `exclude`, as an npz at `path`."""
    from arbstyle.training.checkpoints import restore_model

    arrays = model_arrays(restore_model(Path(workdir).expanduser(), step), exclude)
    write_npz(arrays, Path(path))
    return arrays


def convert(path: Path) -> dict[str, np.ndarray]:
    """The registry's converter: the shipped npz as it is (already verified by sha256)."""
    with np.load(path, allow_pickle=False) as data:
        return {key: np.asarray(data[key], np.float32) for key in data.files}
