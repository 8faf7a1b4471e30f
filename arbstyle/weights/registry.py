"""One door to a ready model: a pretrained name (`magenta-mobile`) or a training workdir.

Both are built by `arbstyle.model.build_model(config)` and then filled, never initialised randomly first:

- a name is a whole-model artifact of `arbstyle.weights.pretrained` (its table holds the model config); its weights are
  converted and cached on first use and verified on every load against the sha256 pinned in the package;
- a path is a training workdir (`config.json` + Orbax `checkpoints/`, see `arbstyle.training.checkpoints`); the newest
  step's `model` item is restored.
"""
from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from arbstyle.weights import pretrained


class RegistryError(ValueError):
    """A model name or path that resolves to nothing (one line)."""


def names() -> list[str]:
    """The pretrained whole models `load_model` knows by name."""
    return sorted(n for n, a in pretrained.ARTIFACTS.items() if a.model_config is not None)


def load_pretrained(name: str, *, progress: bool = False, **config_overrides):
    """A pretrained model in inference mode; `config_overrides` change build-only keys.

    An imported int8 model (its table config says `quantize_activations`) runs with float activations unless
    `quantize_activations=True` asks for the exact replay: float scored better on LPIPS, FID and ArtFID in
    benchmarks/results/evaluation.md and is 8x faster on CPU.
    """
    from arbstyle.model import abstract_model

    config = pretrained_config(name, **config_overrides)
    model = abstract_model(config)
    # the cached file is checked against the sha256 pinned for this version's converter, so it always has the
    # variables of this version's networks
    pretrained.fill_module(model, load_arrays(name, progress=progress), what=f"{name} weights")
    model.eval()
    return model


def pretrained_config(name: str, **config_overrides) -> dict:
    """The full model config of a pretrained name, with build-only overrides (no network is built)."""
    from arbstyle.model_config import model_config

    base = pretrained.model_config(name)
    if base is None:
        raise RegistryError(f"{name} is trunk weights, not a whole model; models: {', '.join(names())}")
    config_overrides.setdefault("quantize_activations", False)
    return model_config(base, **config_overrides)


TRUNK_PREFIX = "predictor/trunk/"  # where a whole model's trunk, kept in another artifact, sits in its state


def load_arrays(name: str, *, progress: bool = False, keys: Collection[str] | None = None) -> dict:
    """A whole model's arrays by state path (only those in `keys`, if given), verified; a trunk kept in another
    artifact comes from there."""
    arrays = pretrained.load_arrays(name, progress=progress, keys=keys)
    trunk = pretrained.artifact(name).trunk
    if trunk:
        trunk_keys = None if keys is None else {k[len(TRUNK_PREFIX):] for k in keys if k.startswith(TRUNK_PREFIX)}
        if trunk_keys is None or trunk_keys:
            trunk_arrays = pretrained.load_arrays(trunk, progress=progress, keys=trunk_keys)
            arrays = {**{TRUNK_PREFIX + k: v for k, v in trunk_arrays.items()}, **arrays}
    return arrays


def load_checkpoint(workdir: str | Path, step: int | None = None):
    """A trained model from a workdir (newest step unless `step`), in inference mode."""
    from arbstyle.training import checkpoints

    return checkpoints.restore_model(Path(workdir).expanduser(), step)


def load_model(name_or_path: str | Path, **config_overrides):
    """`magenta-mobile` (or another name in `names()`), or a training workdir."""
    key = str(name_or_path)
    if key in pretrained.ARTIFACTS:
        return load_pretrained(key, **config_overrides)
    path = Path(key).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        if config_overrides:
            raise RegistryError(f"{path}: a checkpoint is loaded as trained; config overrides "
                                f"{sorted(config_overrides)} apply only to pretrained names")
        return load_checkpoint(path)
    if path.exists():
        raise RegistryError(f"{path}: not a training workdir (no config.json inside)")
    raise RegistryError(f"{key!r}: no such pretrained model ({', '.join(names())}) or training workdir")
