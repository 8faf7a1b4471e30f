"""The training workdir on disk, and loading a trained model back from it.

    WORKDIR/
      config.json                 {"model": <model config for build_model>, "experiment": <full config>,
                                   "styles": [...] (table models: style id -> painting), "arbstyle_version": ...}
      checkpoints/<step>/         one Orbax CheckpointManager step, written atomically (tmp dir, then rename)
        model/                    the model's complete nnx.State (params + batch stats) as a pure nested dict
        train/                    {"step", "opt_state", "rng"}: Optax state of the trainable params, and the RNG
        data/process_<i>-of-<n>.json   each process's grain iterator state
      tensorboard/events.out.tfevents.*   scalars and sample grids (first process only)
      metrics.jsonl               every logged scalar and held-out loss as one JSON line (first process only)
      samples/step_<step>.png     grids of fixed validation pairs: content | style | stylized

`restore_model(workdir)` rebuilds the model with `build_model(config["model"])` and fills it from the newest (or
a given) step's `model` item: nothing but config.json and that item is read.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
MODEL_ITEM, TRAIN_ITEM, DATA_ITEM = "model", "train", "data"
DAMAGED_PREFIX = "damaged-"  # a step that failed to restore is moved aside under this name by a resuming run

log = logging.getLogger("arbstyle.training.checkpoints")


class CheckpointError(ValueError):
    """A workdir or checkpoint that cannot be used; str() is one line naming the path."""


def write_json_atomic(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2, sort_keys=True, default=_json_default)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def read_config(workdir: str | os.PathLike) -> dict:
    path = Path(workdir) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: not found (is {workdir} a training workdir?)")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({' '.join(str(err).split())[:200]})") from None
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read ({err.strerror or err})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise CheckpointError(f"{path}: has no 'model' config")
    return config


def checkpoint_dir(workdir: str | os.PathLike) -> Path:
    return Path(workdir).absolute() / CHECKPOINT_DIR


def manager(workdir: str | os.PathLike, *, max_to_keep: int | None = None, read_only: bool = False
            ) -> ocp.CheckpointManager:
    """The workdir's CheckpointManager. A writer removes leftover temporary directories of an interrupted save;
    a reader (read_only) changes nothing on disk, so it may look at a run that is still training."""
    import grain

    handlers = {MODEL_ITEM: ocp.StandardCheckpointHandler(), TRAIN_ITEM: ocp.StandardCheckpointHandler(),
                DATA_ITEM: grain.checkpoint.CheckpointHandler()}
    options = ocp.CheckpointManagerOptions(max_to_keep=None if read_only else max_to_keep, create=not read_only,
                                           cleanup_tmp_directories=not read_only)
    return ocp.CheckpointManager(checkpoint_dir(workdir), options=options, item_handlers=handlers)


def pure(tree):
    """Every nnx.State inside `tree` (e.g. Optax's moments) -> a plain nested dict of arrays."""
    return jax.tree.map(lambda s: nnx.to_pure_dict(s) if isinstance(s, nnx.State) else s, tree,
                        is_leaf=lambda x: isinstance(x, nnx.State))


def unpure(template, restored):
    """Inverse of `pure`: put restored plain dicts back into (copies of) the nnx.States of `template`."""
    def fill(t, r):
        if isinstance(t, nnx.State):
            state = jax.tree.map(lambda x: x, t)  # a fresh State; the template stays untouched
            nnx.replace_by_pure_dict(state, r)
            return state
        return r
    return jax.tree.map(fill, template, restored, is_leaf=lambda x: isinstance(x, nnx.State))


def abstract_like(tree, sharding=None):
    """ShapeDtypeStructs (optionally with a sharding) for every array leaf: an Orbax restore target."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=sharding), tree)


def available_steps(workdir: str | os.PathLike) -> list[int]:
    folder = checkpoint_dir(workdir)
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit()
                  and (p / "_CHECKPOINT_METADATA").is_file())


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:240]}" if text else type(err).__name__


def restore_newest(workdir: str | os.PathLike, restore: Callable[[int], object], *, what: str = "checkpoint"
                   ) -> tuple[int, object, list[int]]:
    """Call `restore(step)` on the newest step, falling back to older ones while it raises.

    A damaged step (a truncated array file, an empty _METADATA, a truncated optimizer state) is skipped with one
    warning line naming it and the reason. Returns (step, what `restore` returned, the skipped steps); with no
    step that restores, raises CheckpointError (one line).
    """
    steps = available_steps(workdir)
    if not steps:
        raise CheckpointError(f"{checkpoint_dir(workdir)}: no checkpoints")
    skipped, reasons = [], []
    for step in reversed(steps):
        try:
            result = restore(step)
        except (KeyboardInterrupt, SystemExit, MemoryError):
            raise
        except Exception as err:  # noqa: BLE001  (Orbax and TensorStore raise many types for damaged files)
            reason = _one_line(err)
            log.warning("%s: skipped, cannot restore this %s (%s)", checkpoint_dir(workdir) / str(step), what, reason)
            skipped.append(step)
            reasons.append(reason)
            continue
        if skipped:
            log.warning("%s: using step %d instead of %s", checkpoint_dir(workdir), step,
                        ", ".join(map(str, skipped)))
        return step, result, skipped
    raise CheckpointError(f"{checkpoint_dir(workdir)}: no checkpoint restores (steps {steps}; newest: "
                          f"{reasons[0]})")


def set_aside(workdir: str | os.PathLike, step: int) -> Path:
    """Rename a damaged step out of the manager's sight (kept for inspection), so that it can be written again."""
    source = checkpoint_dir(workdir) / str(step)
    target = source.with_name(f"{DAMAGED_PREFIX}{step}")
    index = 1
    while target.exists():
        index += 1
        target = source.with_name(f"{DAMAGED_PREFIX}{step}.{index}")
    source.rename(target)
    return target


def _step(workdir, step: int | None) -> int:
    steps = available_steps(workdir)
    if not steps:
        raise CheckpointError(f"{checkpoint_dir(workdir)}: no checkpoints")
    step = steps[-1] if step is None else int(step)
    if step not in steps:
        raise CheckpointError(f"{checkpoint_dir(workdir)}: no checkpoint for step {step} (have {steps})")
    return step


def _restore_model_item(workdir, step: int, target) -> dict:
    mngr = manager(workdir, read_only=True)
    try:
        if target is None:
            # Every array onto this process's first device, whatever mesh wrote it (a checkpoint from 8 GPUs
            # loads on a laptop): Orbax needs the target sharding spelled out when the topology differs.
            metadata = mngr.item_metadata(step)[MODEL_ITEM]
            target = abstract_like(metadata, jax.sharding.SingleDeviceSharding(jax.devices()[0]))
        restored = mngr.restore(step, args=ocp.args.Composite(**{MODEL_ITEM: ocp.args.StandardRestore(target)}))
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except Exception as err:  # noqa: BLE001  (Orbax and TensorStore raise many types for damaged files)
        raise CheckpointError(f"{checkpoint_dir(workdir) / str(step)}: cannot restore the model "
                              f"({_one_line(err)})") from None
    finally:
        mngr.close()
    return restored[MODEL_ITEM]


def read_model_arrays(workdir: str | os.PathLike, step: int | None = None) -> dict:
    """A checkpoint's model item as a nested dict of numpy arrays (keys as saved: list indices become strings)."""
    tree = _restore_model_item(workdir, _step(workdir, step), None)
    return jax.tree.map(np.asarray, tree)


def restore_model_state(workdir: str | os.PathLike, model: nnx.Module, step: int | None = None) -> int:
    """Fill `model` (built from the workdir's model config) from a checkpoint's model item; returns the step.

    Without `step`, the newest checkpoint that restores (damaged newer ones are skipped with a warning).
    """
    state = nnx.state(model)
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = abstract_like(nnx.to_pure_dict(state), device)
    if step is None:
        step, arrays, _ = restore_newest(workdir, lambda s: _restore_model_item(workdir, s, target), what="model")
    else:
        step = _step(workdir, step)
        arrays = _restore_model_item(workdir, step, target)
    nnx.replace_by_pure_dict(state, arrays)
    nnx.update(model, state)
    return step


def restore_model(workdir: str | os.PathLike, step: int | None = None):
    """The trained model of a workdir (newest checkpoint unless `step`), in inference mode.

    Only config.json and the step's model item are read; nothing is initialised randomly first.
    """
    from arbstyle.model import build_model

    config = read_config(workdir)
    model = nnx.eval_shape(lambda: build_model(config["model"]))
    restore_model_state(workdir, model, step)
    model.eval()
    return model
