"""`arbstyle train`: its arguments, in a module without JAX.

The parser (and so `--help` and argument errors, `--config.*` overrides included) is built at Python's start-up
speed; `run` imports `arbstyle.training.train`, and with it JAX, Flax, Orbax and the data pipeline, only once the
arguments are parsed.
"""
from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

from arbstyle.cli import CLIError
from arbstyle.training import experiment


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="experiment file (experiments/*.py) defining get_config()")
    parser.add_argument("--workdir", required=True, help="checkpoints, logs and samples go here; rerun to resume")
    parser.add_argument("--coordinator", default=None, help="multi-process: coordinator host:port "
                        "(else $JAX_COORDINATOR_ADDRESS, or a cluster JAX detects)")
    parser.add_argument("--num-processes", type=int, default=None, help="multi-process: number of processes")
    parser.add_argument("--process-id", type=int, default=None, help="multi-process: this process's index")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or progress lines "
                        "(the same as --config.train.progress=false)")
    parser.epilog = ("Any config field can be overridden: --config.train.steps=100 --config.optimizer.learning_rate "
                     "1e-4. Values are parsed as the type of the field they replace.")
    parser.set_defaults(config_overrides=[])
    # argparse has no notion of an open-ended option family: take --config.* out before it sees them.
    original = parser.parse_known_args

    def parse_known_args(args=None, namespace=None):
        try:
            overrides, rest = experiment.split_override_args(args or [])
        except experiment.ConfigError as err:
            parser.error(str(err))
        namespace, unknown = original(rest, namespace)
        namespace.config_overrides = list(getattr(namespace, "config_overrides", []) or []) + overrides
        return namespace, unknown

    parser.parse_known_args = parse_known_args


def run(args) -> int:
    from arbstyle.training import checkpoints, parallel
    from arbstyle.training.train import train

    if args.num_processes is not None and args.num_processes < 1:
        raise CLIError(f"--num-processes must be >= 1, got {args.num_processes}")
    if args.process_id is not None and (args.process_id < 0 or (args.num_processes is not None
                                                                 and args.process_id >= args.num_processes)):
        raise CLIError(f"--process-id must be >= 0 and below --num-processes, got {args.process_id}")
    try:
        parallel.initialize_distributed(args.coordinator, args.num_processes, args.process_id)
    except ValueError as err:
        raise CLIError(str(err)) from None
    try:
        config = experiment.load_config(args.config, args.config_overrides)
    except experiment.ConfigError as err:
        raise CLIError(str(err)) from None
    if args.quiet:
        config.train.progress = False
    if parallel.is_primary():
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    else:
        logging.basicConfig(level=logging.WARNING)
    result = train(config, args.workdir)
    if parallel.is_primary():
        last = f", last loss {result.losses[max(result.losses)]:.5g}" if result.losses else ", nothing left to train"
        print(f"{result.status}: step {result.step} (started at {result.start_step}) on {result.devices} device(s) "
              f"in {result.processes} process(es){last}, checkpoint step {result.last_checkpoint} "
              f"in {Path(args.workdir) / checkpoints.CHECKPOINT_DIR}")
    # Interrupted runs exit like the signal would have (130 for Ctrl-C, 143 for SIGTERM), after saving.
    return 0 if result.status == "done" else 128 + int(result.signum or signal.SIGTERM)
