"""The trainer end to end, on tiny real images (tiles of scikit-image's photographs), 32 px, batch 4, with the
N-style ('table') model over the 4 style images (the arbitrary model trains in test_train_smoke.py; the table
compiles in two thirds of the time, and batch-norm statistics, the subject here, are the same code in both):

* 4 virtual CPU devices train exactly what 1 device trains with the same global batch (loss, parameters and the
  batch-norm statistics, which must therefore be global-batch statistics);
* 2 processes joined with jax.distributed (gloo CPU collectives) train exactly what 1 process trains;
* SIGKILL between checkpoints, then the same command again: it resumes from the last checkpoint, sees the same
  data (identical per-step losses) and ends with the parameters of an uninterrupted run; no broken checkpoint;
* a loss that turns non-finite stops the run with the last good checkpoint intact.

Every run is the real command (`arbstyle train`, i.e. arbstyle.cli.main) in a subprocess: device count and
distributed setup must be fixed before JAX starts. To keep the file fast the subprocesses share a JAX compilation
cache (a program compiles once), and the one run whose numbers are not compared compiles with XLA's backend
optimisations off (half the compile time; unoptimised code also rounds differently, so not for comparisons).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from flax import nnx

from arbstyle.training import checkpoints
from tb_events import event_files, scalars
from test_data_samples import real_images, write_folder

REPO = Path(__file__).resolve().parent.parent
SMOKE = REPO / "experiments" / "smoke.py"
STEPS, EVERY = 12, 3  # the killed run has 9 steps and 3 saves left after its first checkpoint: time to kill it
FAST_COMPILE = "--xla_backend_optimization_level=0"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    photos = real_images(14, short_side=40)
    write_folder(root / "content", photos[:10])
    write_folder(root / "styles", photos[10:])
    overrides = [
        f"--config.data.content={root / 'content'}", f"--config.data.style={root / 'styles'}",
        f"--config.data.data_dir={root / 'tfds'}", "--config.data.content_size=32", "--config.data.style_size=32",
        "--config.data.style_resize_extra=(2, 12)", "--config.data.num_threads=1",
        "--config.train.batch_size=4", f"--config.train.steps={STEPS}", f"--config.train.checkpoint_every={EVERY}",
        "--config.train.keep_checkpoints=5", "--config.train.log_every=1", "--config.train.sample_every=0",
        "--config.train.num_samples=2", "--config.train.progress=false",
        "--config.model.predictor=table", "--config.model.num_styles=0",
        # Momentum SGD with a small step. Adam would turn gradients that are exactly zero in exact arithmetic (CIN
        # offsets that a later instance norm removes) into +-lr steps whose sign is rounding noise; and large steps
        # amplify float32 rounding (one step's gradients agree to ~1e-5 between summation orders) chaotically.
        "--config.optimizer.name=sgd", "--config.optimizer.learning_rate=1e-6", "--config.optimizer.momentum=0.9",
        # A shallower loss network (VGG to relu2_2) compiles in half the time; depth plays no part in what is tested.
        "--config.loss.content_layers=(('relu2_2', 1.0),)",
        "--config.loss.style_layers=(('relu1_2', 1.0), ('relu2_2', 1.0))",
    ]
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO),
               JAX_COMPILATION_CACHE_DIR=str(root / "jax_cache"), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    env.pop("XLA_FLAGS", None)
    return {"root": root, "overrides": overrides, "env": env}


def _command(workdir, overrides, *extra):
    # What the `arbstyle` console script runs (`python -m arbstyle.cli` would define a second CLIError class).
    launcher = "import sys; from arbstyle.cli import main; sys.exit(main(sys.argv[1:]))"
    return [sys.executable, "-c", launcher, "train", "--config", str(SMOKE), "--workdir", str(workdir),
            *overrides, *extra]


def _train(setup, workdir, *extra, env=None, check=True):
    proc = subprocess.run(_command(workdir, setup["overrides"], *extra), env=env or setup["env"],
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"training failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}")
    return proc


def _losses(workdir) -> dict[int, float]:
    """Per-step losses as TensorBoard shows them (after a resume, the restarted run's values for repeated steps)."""
    return scalars(Path(workdir) / "tensorboard", "loss/total")


def _model(workdir, step) -> dict[str, np.ndarray]:
    """Flat {path: array} of a checkpoint's model item (params and batch statistics)."""
    tree = checkpoints.read_model_arrays(workdir, step)
    flat = {}

    def walk(node, prefix):
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}/{key}")
        else:
            flat[prefix] = np.asarray(node)
    walk(tree, "")
    return flat


def _assert_same_model(a: dict, b: dict, rtol: float = 1e-5):
    """Every tensor (weights and batch-norm statistics) equal to `rtol` relative to its norm. Tensors still near
    their zero init (RMS under 1e-3: biases after a few tiny steps) are held to the same rtol of an RMS of 1e-3:
    relative to their own size they would only measure the cancellation in their small gradients."""
    assert a.keys() == b.keys()
    assert any(k.endswith("/mean") for k in a) and any(k.endswith("/kernel") for k in a)
    for key in a:
        error, scale = np.linalg.norm(a[key] - b[key]), np.linalg.norm(b[key])
        assert error <= rtol * max(scale, 1e-3 * np.sqrt(b[key].size)), f"{key}: |a - b| = {error:.3g}, |b| = {scale:.3g}"


@pytest.fixture(scope="module")
def reference(setup):
    """One process, one device: STEPS steps with checkpoints every EVERY steps."""
    workdir = setup["root"] / "reference"
    proc = _train(setup, workdir)
    assert "on 1 device(s) in 1 process(es)" in proc.stdout
    return workdir


def test_reference_run_trains_and_writes_everything(reference):
    losses = _losses(reference)
    assert sorted(losses) == list(range(1, STEPS + 1))
    assert all(np.isfinite(v) for v in losses.values())
    assert checkpoints.available_steps(reference) == list(range(EVERY, STEPS + 1, EVERY))
    assert (reference / "samples" / f"step_{STEPS:07d}.png").is_file()
    config = checkpoints.read_config(reference)
    assert config["model"]["predictor"] == "table" and config["experiment"]["train"]["batch_size"] == 4
    assert config["model"]["num_styles"] == 4 and len(config["styles"]) == 4  # one row per style image
    # The registry's view: config.json + the model item rebuild the trained network.
    model = checkpoints.restore_model(reference)
    restored = {f"/{'/'.join(map(str, p))}": np.asarray(v.get_value()) for p, v in
                nnx.to_flat_state(nnx.state(model))}
    saved = _model(reference, STEPS)
    assert restored.keys() == saved.keys()
    assert all(np.array_equal(restored[k], saved[k]) for k in saved)


def test_four_devices_match_one_device(setup, reference):
    workdir = setup["root"] / "four_devices"
    env = dict(setup["env"], XLA_FLAGS="--xla_force_host_platform_device_count=4")
    proc = _train(setup, workdir, f"--config.train.steps={EVERY}", "--config.train.num_samples=0", env=env)
    assert "on 4 device(s) in 1 process(es)" in proc.stdout
    ref, four = _losses(reference), _losses(workdir)
    for step in range(1, EVERY + 1):
        assert four[step] == pytest.approx(ref[step], rel=1e-5)
    _assert_same_model(_model(workdir, EVERY), _model(reference, EVERY))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_process(setup, reference):
    workdir = setup["root"] / "two_processes"
    port = _free_port()
    procs = [subprocess.Popen(_command(workdir, setup["overrides"], f"--config.train.steps={EVERY}",
                                       "--config.train.num_samples=0",
                                       "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                                       "--process-id", str(i)),
                              env=setup["env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, f"{out}\n{err[-4000:]}"
    assert "on 2 device(s) in 2 process(es)" in outputs[0][0]
    assert "done:" not in outputs[1][0]  # only the first process reports
    ref, two = _losses(reference), _losses(workdir)
    for step in range(1, EVERY + 1):
        assert two[step] == pytest.approx(ref[step], rel=1e-5)
    _assert_same_model(_model(workdir, EVERY), _model(reference, EVERY))
    assert len(event_files(workdir / "tensorboard")) == 1


def _complete(workdir) -> list[int]:
    return checkpoints.available_steps(workdir)


def test_sigkill_then_restart_resumes_exactly(setup, reference):
    workdir = setup["root"] / "killed"
    proc = subprocess.Popen(_command(workdir, setup["overrides"]), env=setup["env"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while not _complete(workdir):
        assert proc.poll() is None, proc.communicate()[1][-4000:]
        assert time.time() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)  # wherever it is: mid-step, or mid-save (then a temporary dir is left)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    kept = _complete(workdir)
    assert kept and kept[-1] < STEPS, "killed too late: the run had finished"
    last = kept[-1]

    again = _train(setup, workdir)
    assert f"started at {last}" in again.stdout  # the newest complete checkpoint, same step count
    assert _complete(workdir)[-1] == STEPS and last in _complete(workdir)
    leftovers = [p.name for p in checkpoints.checkpoint_dir(workdir).iterdir() if not p.name.isdigit()]
    assert leftovers == [], f"temporary checkpoint files left behind: {leftovers}"
    # Same data in the same order, same state: every step after the resume has the uninterrupted run's loss.
    ref, resumed = _losses(reference), _losses(workdir)
    for step in range(last + 1, STEPS + 1):
        assert resumed[step] == pytest.approx(ref[step], rel=1e-6)
    _assert_same_model(_model(workdir, STEPS), _model(reference, STEPS), rtol=1e-6)
    for step in _complete(workdir):  # every checkpoint left restores, data position included
        state = (checkpoints.checkpoint_dir(workdir) / str(step) / "data" / "process_0-of-1.json").read_text()
        assert f'"next_index": {step}' in state
        assert _model(workdir, step)


def test_non_finite_loss_stops_with_the_last_good_checkpoint(setup, reference, tmp_path):
    import shutil

    workdir = tmp_path / "diverged"
    shutil.copytree(reference, workdir)
    # A resumed run whose loss is infinite from its first step: a TV weight that is a finite number (so the
    # config accepts it) but overflows float32.
    proc = _train(setup, workdir, f"--config.train.steps={STEPS + 2}", "--config.loss.tv_weight=1e39", check=False,
                  env=dict(setup["env"], XLA_FLAGS=FAST_COMPILE))
    assert proc.returncode == 2
    assert f"non-finite loss or gradient at step {STEPS + 1}" in proc.stderr
    assert f"Last good checkpoint: step {STEPS}" in proc.stderr
    assert _complete(workdir) == list(range(EVERY, STEPS + 1, EVERY))
    _assert_same_model(_model(workdir, STEPS), _model(reference, STEPS), rtol=0)


def _truncate_largest_array(item_dir: Path) -> None:
    path = max((p for p in item_dir.rglob("d/*") if p.is_file()), key=lambda p: p.stat().st_size)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_damaged_newest_checkpoint_resumes_from_the_one_before(setup, reference, tmp_path):
    import shutil

    workdir = tmp_path / "damaged"
    shutil.copytree(reference, workdir)
    folder = checkpoints.checkpoint_dir(workdir)
    _truncate_largest_array(folder / str(STEPS) / checkpoints.TRAIN_ITEM)  # the optimizer state
    proc = _train(setup, workdir)
    assert f"started at {STEPS - EVERY}" in proc.stdout
    skipped = [line for line in proc.stderr.splitlines() if "skipped" in line]
    assert len(skipped) == 1 and f"checkpoints/{STEPS}: skipped" in skipped[0], proc.stderr[-2000:]
    assert (folder / f"{checkpoints.DAMAGED_PREFIX}{STEPS}").is_dir()  # kept aside, not deleted
    _assert_same_model(_model(workdir, STEPS), _model(reference, STEPS), rtol=1e-6)


def test_no_restorable_checkpoint_is_one_line(setup, reference, tmp_path):
    import shutil

    workdir = tmp_path / "all_damaged"
    shutil.copytree(reference, workdir)
    for step in _complete(workdir):
        (checkpoints.checkpoint_dir(workdir) / str(step) / checkpoints.MODEL_ITEM / "_METADATA").write_bytes(b"")
    proc = _train(setup, workdir, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "no checkpoint restores" in errors[0]


def test_rerunning_a_finished_run_with_a_damaged_config_json(setup, reference, tmp_path):
    import shutil

    workdir = tmp_path / "finished"
    shutil.copytree(reference, workdir)
    (workdir / checkpoints.CONFIG_FILE).write_bytes(b"")
    proc = _train(setup, workdir)
    assert "nan" not in proc.stdout and "nothing left to train" in proc.stdout
    assert f"started at {STEPS}" in proc.stdout
    assert "config.json" in proc.stderr and "rewriting" in proc.stderr
    assert checkpoints.read_config(workdir)["model"]["predictor"] == "table"
