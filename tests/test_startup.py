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
def test_a_real_stylize_run_imports_no_training_or_plotting_package(tmp_path):
    import skimage.data

    content, style = tmp_path / "astronaut.png", tmp_path / "brick.png"
    save_image(skimage.data.astronaut()[::8, ::8], content)  # 64 x 64 photo
    save_image(skimage.data.brick()[:64, :64], style)
    out = tmp_path / "out.png"
    result = _run("stylize", str(content), "-s", str(style), "-o", str(out), "--style-size", "64")
    assert result["rc"] == 0 and out.is_file()
    assert "jax" in result["modules"] and "flax" in result["modules"]  # the probe saw a real run
    assert not set(NOT_FOR_INFERENCE) & set(result["modules"]), json.dumps(result["modules"])


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
    cache = tmp_path / "xla-cache"
    argv = ("stylize", str(content), "-s", str(style), "-o", str(tmp_path / "out.png"), "--style-size", "64",
            "--overwrite")
    assert _run(*argv, env_extra={"ARBSTYLE_XLA_CACHE": str(cache)})["rc"] == 0
    first = sorted(p.name for p in cache.glob("*-cache"))
    assert len(first) >= 3  # embedding, heads and transformer at least
    assert _run(*argv, env_extra={"ARBSTYLE_XLA_CACHE": str(cache)})["rc"] == 0
    assert sorted(p.name for p in cache.glob("*-cache")) == first
