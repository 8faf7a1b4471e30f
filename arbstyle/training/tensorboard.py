"""What a training run shows in TensorBoard, written with tensorboardX (no TensorFlow needed).

`RunLog` adds to tensorboardX what training needs around it: one switch that silences every process but the first,
sample grids accepted as [0, 1] float or uint8 HxWx3, and the experiment config both as text and as hparams (a
nested config flattened to dotted keys: the hparams dashboard only takes flat bool / number / string values).

Events go through tensorboardX's synchronous `EventsWriter` and are flushed after every call, not through its
`SummaryWriter`, whose background thread flushes every two minutes and whose flush() does not wait for queued
events: a run killed after a checkpoint must not lose the scalars it logged before it.

The event files go to `<workdir>/tensorboard/`, one per run (a resumed run adds a file), so
`tensorboard --logdir runs/` shows every workdir as a run.
"""
from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

# Scalars the hparams dashboard shows next to each run's settings.
HPARAM_METRICS = ("loss/total", "loss/content", "loss/style")
_FILE_NUMBERS = itertools.count()


def flatten(config: Mapping, prefix: str = "") -> dict[str, bool | int | float | str]:
    """{'train': {'steps': 5}} -> {'train.steps': 5}; values hparams cannot hold (tuples, None) become text."""
    out: dict[str, bool | int | float | str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:
            out[name] = json.dumps(value, default=str) if isinstance(value, (list, tuple)) else str(value)
    return out


class RunLog:
    """Scalars, images and the config of one run. With enabled=False every call does nothing and no file is made."""

    def __init__(self, logdir: str | os.PathLike, *, enabled: bool = True):
        self._events = None
        if enabled:
            from tensorboardX.event_file_writer import EventsWriter

            logdir = Path(logdir)
            logdir.mkdir(parents=True, exist_ok=True)
            # File names carry only the second they were opened in, and an existing one would be truncated: the pid
            # and a counter keep two runs started within the same second (a quick resume) in separate files.
            suffix = f".{os.getpid()}.{next(_FILE_NUMBERS)}"
            self._events = EventsWriter(str(logdir / "events"), filename_suffix=suffix)

    @property
    def enabled(self) -> bool:
        return self._events is not None

    def _write(self, summaries, step: int) -> None:
        from tensorboardX.proto.event_pb2 import Event

        for summary in summaries:
            self._events.write_event(Event(wall_time=time.time(), step=int(step), summary=summary))
        self._events.flush()

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        if self.enabled and values:
            from tensorboardX.summary import scalar

            self._write([scalar(tag, float(value)) for tag, value in values.items()], step)

    def image(self, tag: str, image, step: int) -> None:
        """image: uint8, or float in [0, 1], HxWx3 (stored as PNG)."""
        if self.enabled:
            from tensorboardX.summary import image as image_summary

            arr = np.asarray(image)
            if arr.dtype != np.uint8:
                arr = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
            self._write([image_summary(tag, arr, dataformats="HWC")], step)

    def config(self, config: Mapping, step: int = 0) -> None:
        """The experiment config: as text (the whole nested dict, JSON) and as hparams (flattened)."""
        if not self.enabled:
            return
        from tensorboardX.summary import hparams, text

        lines = json.dumps(config, indent=2, sort_keys=True, default=str).splitlines()
        # Indented four spaces: TensorBoard renders text as markdown, and this keeps it one code block.
        experiment, session_start, _ = hparams(flatten(config), {tag: 0.0 for tag in HPARAM_METRICS})
        self._write([text("config", "\n".join("    " + line for line in lines)), experiment, session_start], step)

    def close(self) -> None:
        if self._events is not None:
            self._events.close()
            self._events = None

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
