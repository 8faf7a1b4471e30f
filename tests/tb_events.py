"""Read a training run's TensorBoard files back with TensorBoard's own reader (what `tensorboard --logdir` uses)."""
from __future__ import annotations

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def load(logdir: str | Path) -> EventAccumulator:
    """Every event file in logdir, as TensorBoard merges them (a resumed run's later file replaces the steps it
    repeats); nothing is sampled away."""
    accumulator = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def scalars(logdir: str | Path, tag: str) -> dict[int, float]:
    run = load(logdir)
    return {e.step: e.value for e in run.Scalars(tag)} if tag in run.Tags()["scalars"] else {}


def event_files(logdir: str | Path) -> list[Path]:
    return sorted(Path(logdir).glob("events.out.tfevents.*"))
