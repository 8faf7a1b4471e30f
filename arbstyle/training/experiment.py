"""Experiment configs: `experiments/*.py` files whose `get_config()` returns an ml_collections.ConfigDict, and
command-line overrides of any field (`--config.optimizer.learning_rate=1e-4`), typed by the field they replace.

Every experiment starts from `base_config()`, which names every knob the trainer reads, so a typo in an
experiment file or an override is an error rather than a silently ignored setting.
"""
from __future__ import annotations

import ast
import importlib.util
import math
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import ml_collections

OVERRIDE_PREFIX = "--config."
# Numeric fields and their valid ranges: (low, high, low is exclusive). None is unbounded.
RANGES = {
    "seed": (0, None, False), "parallel.num_devices": (0, None, False),
    "model.alpha": (0, 4, True), "model.embedding_dim": (1, None, False), "model.num_styles": (0, None, False),
    "data.content_size": (8, 4096, False), "data.style_size": (8, 4096, False), "data.content_resize": (0, 8192, False),
    "data.num_threads": (1, 256, False), "data.prefetch": (0, None, False),
    "loss.content_weight": (0, None, False), "loss.style_weight": (0, None, False), "loss.tv_weight": (0, None, False),
    "optimizer.learning_rate": (0, None, True), "optimizer.b1": (0, 1, False), "optimizer.b2": (0, 1, False),
    "optimizer.eps": (0, None, True), "optimizer.momentum": (0, 1, False), "optimizer.clip_norm": (0, None, False),
    "optimizer.warmup_steps": (0, None, False), "init.distill.styles": (16, None, False),
    "init.distill.holdout": (0, 1, True),
    "train.batch_size": (1, None, False), "train.steps": (0, None, False), "train.log_every": (1, None, False),
    "train.checkpoint_every": (1, None, False), "train.keep_checkpoints": (1, None, False),
    "train.sample_every": (0, None, False), "train.num_samples": (0, None, False),
}


class ConfigError(ValueError):
    """A config file or override that cannot be used; str() is one line."""


def base_config() -> ml_collections.ConfigDict:
    """Every field the trainer reads, with defaults (Magenta's training settings where they apply)."""
    from arbstyle import losses
    from arbstyle.data import pipeline
    from arbstyle.model import DEFAULT_CONFIG

    c = ml_collections.ConfigDict()
    c.seed = 0  # model init and data order
    c.model = ml_collections.ConfigDict({k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULT_CONFIG.items()})
    c.model.trunk = ml_collections.ConfigDict({"final_endpoint": "Mixed_6e"})
    # Where the starting weights come from (applied in this order): a whole model (registry name or workdir),
    # then pretrained trunk weights for the style predictor (an arbstyle.weights.pretrained name, e.g. 'inception-v3'),
    # then a transformer and its CIN heads from another model (registry name or workdir) or a Magenta TFLite file
    # (arbstyle.weights.magenta_tflite); last, the bottleneck fitted to a teacher's embeddings of `styles` augmented
    # training styles (arbstyle.training.distill; saved as checkpoint 0).
    c.init = ml_collections.ConfigDict({"model": "", "trunk": "", "transformer": "",
                                        "distill": {"teacher": "", "styles": 2048, "holdout": 0.1}})
    c.data = pipeline.default_config()
    loss = losses.LossConfig()
    c.loss = ml_collections.ConfigDict({
        "content_layers": loss.content_layers, "style_layers": loss.style_layers,
        "content_weight": loss.content_weight, "style_weight": loss.style_weight, "tv_weight": loss.tv_weight,
        "pooling": loss.pooling,
        # > 0: the style's Gram targets come from the style image resized to this side (the predictor still sees
        # it at data.style_size). Matching the content crop keeps the texture scale of 256/256 training at small
        # crops, and costs a quarter of the VGG pass of a 256 px style at 128.
        "style_size": 0,
        # Noise stability (Gupta et al. 2017): > 0 adds this weight times the mean squared difference between the
        # stylized content and the stylized content plus Gaussian noise of standard deviation `stability_noise`
        # (pixel values in [0, 1]). The network then stops amplifying small input changes: flicker in video.
        "stability_weight": 0.0,
        "stability_noise": 0.02,
        # > 0 adds this weight times the mean squared difference between the stylized content and the starting
        # model's (init.model, fixed, in inference mode) stylization of it: a fine-tune that must keep the
        # starting model's look, e.g. while the stability term removes its flicker. With content, style and TV
        # weights at 0 the loss network is skipped.
        "teacher_weight": 0.0,
        # Motion stability: > 0 adds this weight times the mean squared difference between the stylization of the
        # content moved by a random sub-pixel shift (uniform, at most `motion_shift` pixels each way, bilinear) and
        # the stylization moved by the same shift, away from the edges. Stride-2 convolutions and nearest-neighbour
        # upsampling make the output of a slightly moved input differ by more than the move: flicker in pans.
        "motion_weight": 0.0,
        "motion_shift": 2.0,
    })
    # Adam as in Magenta (tf.train.AdamOptimizer defaults; learning rate 1e-5; no clipping). "sgd" (with optional
    # momentum) exists for comparisons where Adam's per-weight normalisation would amplify rounding noise: weights
    # whose exact gradient is zero (e.g. CIN offsets that a later instance norm removes) get +-lr steps from noise.
    c.optimizer = ml_collections.ConfigDict({
        "name": "adam", "learning_rate": 1e-5, "b1": 0.9, "b2": 0.999, "eps": 1e-8, "momentum": 0.0,
        "clip_norm": 0.0,  # > 0: clip gradients to this global norm
        "warmup_steps": 0, "schedule": "constant",  # "constant" | "cosine" (decays to 0 at train.steps)
    })
    c.train = ml_collections.ConfigDict({
        "batch_size": 8,  # global, over all devices and processes
        "steps": 100_000,
        "freeze": (),  # module path prefixes kept fixed (and their batch norm in inference mode), e.g. 'predictor/trunk'
        "bf16": False,  # bfloat16 activations in the model's convolutions (GPU/TPU); the loss network stays float32
        "log_every": 50,
        "checkpoint_every": 1000,
        "keep_checkpoints": 3,
        "sample_every": 1000,  # 0: only at the end
        "num_samples": 4,  # fixed validation pairs in the sample grid
        "progress": True,  # tqdm bar on the first process
    })
    c.parallel = ml_collections.ConfigDict({"num_devices": 0})  # 0: every device of every process
    return c


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """Run `path`'s get_config() ('file.py:arg' passes arg), then apply `overrides` ('a.b=value' strings)."""
    text = str(path)
    arg = None
    if ":" in text and not Path(text).is_file():
        text, arg = text.rsplit(":", 1)
    file = Path(text)
    if not file.is_file():
        raise ConfigError(f"{file}: config file not found")
    name = "arbstyle_experiment_" + re.sub(r"\W", "_", file.stem)
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001  (a broken experiment file: say which and why, in one line)
        raise ConfigError(f"{file}: cannot load ({type(err).__name__}: {err})") from err
    finally:
        sys.modules.pop(name, None)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"{file}: defines no get_config()")
    try:
        config = module.get_config(arg) if arg is not None else module.get_config()
    except (TypeError, ValueError, KeyError) as err:  # e.g. an argument the experiment does not know
        shown = f"get_config({arg!r})" if arg is not None else "get_config()"
        raise ConfigError(f"{file}: {shown}: {err}") from err
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f"{file}: get_config() returned {type(config).__name__}, not an ml_collections.ConfigDict")
    check_sections(config, file)
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep:
            raise ConfigError(f"override {override!r}: expected key=value")
        apply_override(config, key, value)
    check_values(config, file)
    config.lock()
    return config


def check_sections(config: ml_collections.ConfigDict, file) -> None:
    """Every section and field of `base_config()` present, and no unknown section: one line naming the first
    problem (a config that does not start from base_config() would otherwise fail deep inside training)."""
    base = base_config()
    for key in base:
        if key not in config:
            what = "section" if isinstance(base[key], ml_collections.ConfigDict) else "field"
            raise ConfigError(f"{file}: get_config() has no {what} {key!r}; start from "
                              "arbstyle.training.experiment.base_config(), which has every field")
        if isinstance(base[key], ml_collections.ConfigDict):
            if not isinstance(config[key], ml_collections.ConfigDict):
                raise ConfigError(f"{file}: {key!r} must be a section (ConfigDict), got {type(config[key]).__name__}")
            missing = sorted(set(base[key]) - set(config[key]))
            if missing:
                raise ConfigError(f"{file}: section {key!r} lacks {', '.join(missing)}; start from "
                                  "arbstyle.training.experiment.base_config()")
    unknown = sorted(set(config) - set(base))
    if unknown:
        raise ConfigError(f"{file}: unknown config section(s) {', '.join(unknown)}; known: {', '.join(sorted(base))}")


def check_values(config: ml_collections.ConfigDict, file) -> None:
    """The numeric fields within their ranges (one line naming the field and where it can be changed)."""
    for key, (low, high, exclusive) in RANGES.items():
        node = config
        for part in key.split("."):
            node = node[part]
        where = f"{key} = {node!r} (in {file} or --config.{key})"
        if isinstance(node, bool) or not isinstance(node, (int, float)) or not math.isfinite(node):
            raise ConfigError(f"{where}: must be a finite number")
        if (node <= low if exclusive else node < low) or (high is not None and node > high):
            bound = f"> {low}" if exclusive else f">= {low}"
            raise ConfigError(f"{where}: must be {bound}" + (f" and <= {high}" if high is not None else ""))


def split_override_args(argv: Iterable[str]) -> tuple[list[str], list[str]]:
    """Separate `--config.a.b=v` / `--config.a.b v` arguments (returned as 'a.b=v') from the others."""
    overrides, rest = [], []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith(OVERRIDE_PREFIX):
            body = arg[len(OVERRIDE_PREFIX):]
            if "=" not in body:
                if i + 1 >= len(args):
                    raise ConfigError(f"{arg}: missing value")
                body = f"{body}={args[i + 1]}"
                i += 1
            overrides.append(body)
        else:
            rest.append(arg)
        i += 1
    return overrides, rest


_TRUE = {"true", "t", "yes", "y", "1", "on"}
_FALSE = {"false", "f", "no", "n", "0", "off"}


def parse_value(text: str, current):
    """The override text as the type of the value it replaces."""
    if isinstance(current, bool):
        low = text.strip().lower()
        if low in _TRUE | _FALSE:
            return low in _TRUE
        raise ValueError(f"expected a boolean, got {text!r}")
    if isinstance(current, int):
        number = float(text)
        if number != int(number):
            raise ValueError(f"expected an integer, got {text!r}")
        return int(number)
    if isinstance(current, float):
        return float(text)
    if isinstance(current, str):
        return text
    if isinstance(current, (tuple, list)):
        if not text.strip():
            return type(current)()
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = tuple(part.strip() for part in text.split(","))  # a,b,c without quotes
        if not isinstance(value, (tuple, list)):
            value = (value,)
        return type(current)(value)
    if isinstance(current, ml_collections.ConfigDict):
        value = ast.literal_eval(text)
        if not isinstance(value, dict):
            raise ValueError(f"expected a dict, got {text!r}")
        return value
    try:  # None or another type: a Python literal, else the plain string
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def apply_override(config: ml_collections.ConfigDict, key: str, text: str) -> None:
    parts = key.split(".")
    node = config
    for depth, part in enumerate(parts):
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            where = ".".join(parts[:depth]) or "the top level"
            known = ", ".join(sorted(node.keys())) if isinstance(node, ml_collections.ConfigDict) else "(not a group)"
            raise ConfigError(f"--config.{key}: unknown config field {part!r} in {where}; known: {known}")
        if depth < len(parts) - 1:
            node = node[part]
    current = node[parts[-1]]
    try:
        value = parse_value(text, current)
    except ValueError as err:
        raise ConfigError(f"--config.{key}={text}: {err}") from None
    if isinstance(current, ml_collections.ConfigDict):
        node[parts[-1]] = ml_collections.ConfigDict(value)
    else:
        try:
            node[parts[-1]] = value
        except TypeError as err:
            raise ConfigError(f"--config.{key}={text}: {err}") from None
