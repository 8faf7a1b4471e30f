"""A damaged newest checkpoint falls back to the newest one that restores, with one line saying which was skipped
and why; with none restorable, one line and exit status 2. Real Orbax checkpoints of a small arbitrary-style
model, damaged the ways a full disk or a killed copy damages them."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx

from arbstyle.images import save_image
from arbstyle.training import checkpoints
from arbstyle.weights.registry import load_model
from stylize_helpers import photo, tiny_model

REPO = Path(__file__).resolve().parent.parent
LAUNCHER = "import sys; from arbstyle.cli import main; sys.exit(main(sys.argv[1:]))"


def _save_workdir(workdir: Path) -> None:
    """Steps 1 and 2 of the tiny model; step 2's weights are step 1's plus 1, so a restore says which it read."""
    model = tiny_model()
    state = checkpoints.pure(nnx.state(model))
    checkpoints.write_json_atomic(workdir / checkpoints.CONFIG_FILE, {"model": dict(model.config)})
    mngr = checkpoints.manager(workdir)
    for step, shift in ((1, 0.0), (2, 1.0)):
        tree = jax.tree.map(lambda x, s=shift: np.asarray(x) + np.asarray(s, x.dtype), state)
        mngr.save(step, args=ocp.args.Composite(**{checkpoints.MODEL_ITEM: ocp.args.StandardSave(tree)}))
    mngr.wait_until_finished()
    mngr.close()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ckpt") / "run"
    _save_workdir(workdir)
    return workdir


@pytest.fixture
def workdir(pristine, tmp_path):
    import shutil

    target = tmp_path / "run"
    shutil.copytree(pristine, target)
    return target


def _kernel(model) -> float:
    return float(np.asarray(model.transformer.contract_conv1.conv.kernel[...]).ravel()[0])


def _largest_array_file(step_dir: Path) -> Path:
    return max((p for p in (step_dir / "model").rglob("d/*") if p.is_file()), key=lambda p: p.stat().st_size)


def _truncate_array(step_dir: Path) -> None:
    path = _largest_array_file(step_dir)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _empty_metadata(step_dir: Path) -> None:
    (step_dir / "model" / "_METADATA").write_bytes(b"")


@pytest.mark.parametrize("damage", [_truncate_array, _empty_metadata], ids=["truncated-array", "empty-metadata"])
def test_model_falls_back_to_the_newest_restorable_step(workdir, damage, caplog):
    intact = _kernel(load_model(workdir))  # step 2 when nothing is damaged
    damage(checkpoints.checkpoint_dir(workdir) / "2")
    with caplog.at_level(logging.WARNING, logger="arbstyle.training.checkpoints"):
        model = load_model(workdir)
    assert _kernel(model) == pytest.approx(intact - 1.0)  # step 1's weights
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 1 and "/2: skipped" in skipped[0] and "\n" not in skipped[0]


def _stylize(workdir: Path, tmp: Path):
    save_image(photo(32, 32), tmp / "c.png")
    save_image(photo(80, 80, seed=1), tmp / "s.png")
    env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu", ARBSTYLE_XLA_CACHE="off")
    return subprocess.run([sys.executable, "-c", LAUNCHER, "stylize", str(tmp / "c.png"), "-s", str(tmp / "s.png"),
                           "-o", str(tmp / "out.png"), "--model", str(workdir), "--style-size", "80"],
                          capture_output=True, text=True, env=env, timeout=300)


def test_cli_uses_the_older_step_and_says_so(workdir, tmp_path):
    _truncate_array(checkpoints.checkpoint_dir(workdir) / "2")
    proc = _stylize(workdir, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if "skipped" in line]
    assert len(lines) == 1 and "checkpoints/2: skipped" in lines[0]
    assert (tmp_path / "out.png").is_file()


def test_cli_with_no_restorable_step_is_one_line_exit_2(workdir, tmp_path):
    for step in ("1", "2"):
        _empty_metadata(checkpoints.checkpoint_dir(workdir) / step)
    proc = _stylize(workdir, tmp_path)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "no checkpoint restores" in errors[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("content", [b"", b"\xff\xfe\x00garbage", b'{"model": 3}'])
def test_damaged_config_json_is_one_line(workdir, tmp_path, content):
    (workdir / checkpoints.CONFIG_FILE).write_bytes(content)
    proc = _stylize(workdir, tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "config.json" in errors[0]
