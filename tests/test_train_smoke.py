"""`arbstyle train --config experiments/smoke.py` on real images from ../shared/data: the loss goes down, and the
run leaves checkpoints, TensorBoard event files and sample grids (skipped where ../shared is absent)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from arbstyle import images
from arbstyle.cli import main
from arbstyle.training import checkpoints
from tb_events import event_files, load

SMOKE = Path(__file__).resolve().parent.parent / "experiments" / "smoke.py"


@pytest.mark.shared
def test_smoke_config_lowers_the_loss_and_writes_everything(shared, tmp_path, capsys):
    workdir = tmp_path / "smoke"
    assert main(["train", "--config", str(SMOKE), "--workdir", str(workdir), "--config.train.progress=false"]) == 0
    out = capsys.readouterr().out
    assert "done: step 12 (started at 0)" in out

    assert len(event_files(workdir / "tensorboard")) == 1
    run = load(workdir / "tensorboard")
    losses = {e.step: e.value for e in run.Scalars("loss/total")}
    assert sorted(losses) == list(range(1, 13))
    first, last = np.mean([losses[s] for s in range(1, 4)]), np.mean([losses[s] for s in range(10, 13)])
    assert last < 0.5 * first, f"loss did not go down: first 3 steps {first:.4g}, last 3 {last:.4g}"

    assert checkpoints.available_steps(workdir) == [6, 12]
    model = checkpoints.restore_model(workdir)
    assert model.config["predictor"] == "inception" and model.config["alpha"] == 0.25
    grids = sorted((workdir / "samples").glob("step_*.png"))
    assert [g.name for g in grids] == ["step_0000006.png", "step_0000012.png"]
    grid = images.load_image(grids[-1])
    assert grid.shape == (2 * 64 + 4, 3 * 64 + 2 * 4, 3) and grid.std() > 0.05
    assert [e.step for e in run.Images("samples")] == [6, 12]
    assert "train.steps" in run.PluginTagToContent("hparams")["_hparams_/session_start_info"].decode("latin-1")
