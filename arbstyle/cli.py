"""The `arbstyle` command: one sub-command per module, each defining its own arguments."""
from __future__ import annotations

import argparse
import atexit
import importlib
import os
import sys

import arbstyle  # noqa: F401  (sets XLA flags before any JAX import)
from arbstyle._flax import import_flax_without_ipython  # noqa: F401  (re-exported)
from arbstyle._xla import enable_compilation_cache

# command -> (module, help). A module owning several commands defines add_arguments_<cmd> / run_<cmd>. Each module
# is imported to build the parser, so it imports no JAX, Flax, Orbax or TFDS at module level (its run does):
# `--help` and argument errors then come back at Python's start-up speed (tests/test_startup.py).
COMMANDS = {
    "stylize": ("arbstyle.inference.stylize_cli", "stylize photos with any painting"),
    "embed": ("arbstyle.inference.stylize_cli", "compute 100-d style embeddings of paintings"),
    "demo": ("arbstyle.inference.stylize_cli", "stylize sample images that ship with installed packages"),
    "learn": ("arbstyle.inference.learn_cli",
              "fit a painting's style through the frozen transformer (better than predicted)"),
    "optimize": ("arbstyle.optimize_cli", "Gatys et al.: optimize the pixels of one image"),
    "train": ("arbstyle.training.train_cli", "train a model from an experiment config"),
    "data": ("arbstyle.data.command", "build, inspect, preview and time TFDS datasets"),
    "evaluate": ("arbstyle.evaluation.evaluate", "compare models on content/style loss, LPIPS, FID, ArtFID"),
    "weights": ("arbstyle.weights.pretrained", "list, fetch and verify pretrained weights"),
}


# Commands whose run builds Flax NNX networks (the others never import flax). stylize, embed and demo run stored
# programs (arbstyle.inference.programs) and import flax only when they build a network.
NNX_COMMANDS = {"optimize", "train", "evaluate", "learn"}


class CLIError(Exception):
    """An expected failure: printed as one line, exit status 2."""


def _hook(module, name: str, command: str):
    return getattr(module, f"{name}_{command}", None) or getattr(module, name)


# Commands whose process ends with the command. Once one has returned (its outputs written, closed and renamed),
# the console script runs the exit handlers and leaves without the interpreter's teardown of the 800-1,200 modules a
# run with JAX holds: 0.15-0.2 s of a 1.8 s warm one-image run on the 2-core machine (docs/performance.md).
QUICK_EXIT_COMMANDS = {"stylize", "embed", "demo"}


def chosen_command(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, dict]:
    """All commands are listed, but only the one being run is imported: start-up stays fast."""
    parser = argparse.ArgumentParser(prog="arbstyle", description=__doc__)
    parser.add_argument("--version", action="version", version=f"arbstyle {arbstyle.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = chosen_command(argv)
    runners = {}
    for command, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(command, help=help_text, description=help_text)
        if command == chosen:
            module = importlib.import_module(module_name)
            _hook(module, "add_arguments", command)(command_parser)
            runners[command] = _hook(module, "run", command)
    return parser, runners


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser, runners = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command in NNX_COMMANDS:
        import_flax_without_ipython()
    enable_compilation_cache()  # each CLI run is a new process: reuse compiled programs across runs
    from arbstyle.images import ImageError

    try:
        return int(runners[args.command](args) or 0)
    except (CLIError, ImageError, FileNotFoundError, IsADirectoryError, PermissionError) as err:
        print(f"arbstyle {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"arbstyle {args.command}: interrupted", file=sys.stderr)
        return 130


def run() -> None:
    """The `arbstyle` console script: `main`, then the process's exit (see QUICK_EXIT_COMMANDS)."""
    argv = sys.argv[1:]
    rc = main(argv)
    if chosen_command(argv) in QUICK_EXIT_COMMANDS:
        atexit._run_exitfuncs()  # logging's flush, and any handler a host or benchmark registered
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe: nothing more can be said
                pass
        os._exit(rc)
    sys.exit(rc)


if __name__ == "__main__":
    # Under `python -m`, this file is `__main__`, a second copy whose CLIError the command modules never raise.
    from arbstyle.cli import run as _run

    _run()
