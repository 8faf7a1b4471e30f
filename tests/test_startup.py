"""What a command-line run imports: help without JAX, and a real stylize run without the training stack.

Each check runs in a fresh interpreter, as a user's `arbstyle` call does; the module list is read at its end.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from arbstyle.cli import COMMANDS
from arbstyle.images import save_image

ROOT = Path(__file__).resolve().parent.parent
# Training, data and plotting packages: a stylize or embed run uses none of them. (optax is not listed: flax.nnx
# itself imports it, see docs/performance.md.)
NOT_FOR_INFERENCE = ("orbax", "grain", "tensorflow_datasets", "tensorflow", "matplotlib", "IPython")
# What no command may import just to parse its arguments: these cost seconds.
BEFORE_PARSING = ("jax", "flax", "optax", "orbax", "grain", "tensorflow_datasets", "tensorflow")

_PROBE = """
import json, sys
from arbstyle.cli import main
try:
    rc = main(sys.argv[1:])
except SystemExit as exit_:
    rc = exit_.code
print(json.dumps({"rc": rc, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def _run(*argv: str, env_extra: dict | None = None) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.update(env_extra or {})
    proc = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


HELP = [["--help"], *([command, "--help"] for command in COMMANDS), ["data", "build", "--help"]]
# Usage errors argparse reports (exit status 2) before any command runs.
ARGUMENT_ERRORS = [
    ["stylize", "a.jpg"],  # no -o
    ["learn"],  # no painting
    ["optimize", "--content", "a.jpg", "-o", "out.png"],  # no --style
    ["train", "--workdir", "runs/x"],  # no --config
    ["train", "--config", "experiments/smoke.py", "--workdir", "runs/x", "--config.train.steps"],  # no value
    ["data"],  # no action
]


@pytest.mark.parametrize("argv, rc", [(argv, 0) for argv in HELP] + [(argv, 2) for argv in ARGUMENT_ERRORS],
                         ids=lambda value: " ".join(value) if isinstance(value, list) else None)
def test_help_and_argument_errors_come_before_jax(argv, rc):
    result = _run(*argv)
    assert result["rc"] == rc
    assert not set(BEFORE_PARSING) & set(result["modules"]), [m for m in BEFORE_PARSING if m in result["modules"]]


@pytest.mark.slow
def test_a_real_stylize_run_imports_no_training_or_plotting_package_and_a_warm_one_no_flax(tmp_path):
    import numpy as np
    import skimage.data
    from PIL import Image

    content, style = tmp_path / "astronaut.png", tmp_path / "brick.png"
    save_image(skimage.data.astronaut()[::8, ::8], content)  # 64 x 64 photo
    save_image(skimage.data.brick()[:64, :64], style)
    env = {"ARBSTYLE_PROGRAMS": str(tmp_path / "programs")}  # empty: the first run builds and stores them
    runs = []
    for name in ("cold.png", "warm.png"):
        out = tmp_path / name
        result = _run("stylize", str(content), "-s", str(style), "-o", str(out), "--style-size", "64",
                      env_extra=env)
        assert result["rc"] == 0 and out.is_file()
        assert not set(NOT_FOR_INFERENCE) & set(result["modules"]), json.dumps(result["modules"])
        runs.append(result["modules"])
    assert "jax" in runs[0] and "flax" in runs[0]  # built the network, exported its programs
    assert "jax" in runs[1] and "flax" not in runs[1]  # ran the stored programs
    assert len(list((tmp_path / "programs").glob("*.npz"))) == 3  # predictor, heads, transformer
    cold, warm = (np.asarray(Image.open(tmp_path / n)) for n in ("cold.png", "warm.png"))
    assert np.array_equal(cold, warm)


def test_flax_imported_without_ipython_leaves_ipython_importable():
    code = ("import sys\nfrom arbstyle.cli import import_flax_without_ipython\nimport_flax_without_ipython()\n"
            "assert 'flax.nnx' in sys.modules and 'IPython' not in sys.modules\nimport IPython\nprint('ok')")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


@pytest.mark.slow
def test_a_second_run_compiles_nothing_new(tmp_path):
    # Every program of a stylize run (style embedding, CIN heads, transformer) is kept in the persistent cache,
    # so a second run with the same shapes adds no entry: it compiled nothing.
    import skimage.data

    content, style = tmp_path / "coffee.png", tmp_path / "gravel.png"
    save_image(skimage.data.coffee()[::8, ::8], content)
    save_image(skimage.data.gravel()[:64, :64], style)
    cache, programs = tmp_path / "xla-cache", tmp_path / "programs"
    env = {"ARBSTYLE_XLA_CACHE": str(cache), "ARBSTYLE_PROGRAMS": str(programs)}
    argv = ("stylize", str(content), "-s", str(style), "-o", str(tmp_path / "out.png"), "--style-size", "64",
            "--overwrite")
    assert _run(*argv, env_extra=env)["rc"] == 0
    first = sorted(p.name for p in cache.glob("*-cache"))
    stored = {p.name: p.stat().st_mtime_ns for p in programs.glob("*.npz")}
    assert len(first) >= 3 and len(stored) == 3  # embedding, heads and transformer
    assert _run(*argv, env_extra=env)["rc"] == 0
    assert sorted(p.name for p in cache.glob("*-cache")) == first
    assert {p.name: p.stat().st_mtime_ns for p in programs.glob("*.npz")} == stored  # read, not written again


@pytest.mark.slow
def test_the_console_script_exits_quickly_with_its_output_flushed_and_its_status(tmp_path):
    # `run` leaves stylize/embed/demo through os._exit: what they printed (a pipe here, so block-buffered) must
    # still arrive, the file must be whole, and the exit status must be the command's.
    import numpy as np
    import skimage.data

    style = tmp_path / "brick.png"
    save_image(skimage.data.brick()[:64, :64], style)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               ARBSTYLE_PROGRAMS=str(tmp_path / "programs"))
    out = tmp_path / "styles.npz"
    ok = subprocess.run([sys.executable, "-m", "arbstyle.cli", "embed", str(style), "-o", str(out), "--style-size",
                         "64", "--model", "magenta-mobile"], capture_output=True, text=True, env=env, timeout=600)
    assert ok.returncode == 0 and str(out) in ok.stdout, ok.stderr
    with np.load(out, allow_pickle=False) as data:
        assert data["embeddings"].shape == (1, 100)
    bad = subprocess.run([sys.executable, "-m", "arbstyle.cli", "embed", str(tmp_path / "missing.png"), "-o",
                          str(out)], capture_output=True, text=True, env=env, timeout=600)
    assert bad.returncode == 2 and "missing.png" in bad.stderr
