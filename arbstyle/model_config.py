"""The model config: its keys, their defaults and validation, in a module without JAX or Flax.

`arbstyle.model.build_model` builds a network from it; stored programs (`arbstyle.inference.programs`) need it
to run a model without building one, so it must not import the networks.
"""
from __future__ import annotations

from collections.abc import Mapping

EMBEDDING_DIM = 100  # Ghiasi et al.'s style bottleneck
PREDICTORS = ("inception", "mobilenet", "table")  # the trunks of `arbstyle.model.TRUNKS`, or a learned table

DEFAULT_CONFIG = {
    "predictor": "inception",  # "inception" | "mobilenet" | "table"
    "alpha": 1.0,  # transformer width multiplier: 1.0 full, 0.25 Magenta's mobile model
    "embedding_dim": EMBEDDING_DIM,
    "num_styles": 0,  # rows of the gamma/beta table when predictor == "table"
    "trunk": {},  # extra arguments for the predictor's trunk builder
    "quantize_activations": False,  # replay an imported int8 QDQ graph's activation quantization (nets/qdq.py)
}


def model_config(config: Mapping | None = None, **overrides) -> dict:
    """The full config: defaults, then `config`, then keyword overrides. Unknown keys are an error."""
    merged = dict(DEFAULT_CONFIG)
    for source in (config or {}), overrides:
        for key, value in dict(source).items():
            if key not in DEFAULT_CONFIG:
                raise KeyError(f"unknown model config key {key!r}; known: {sorted(DEFAULT_CONFIG)}")
            merged[key] = dict(value) if isinstance(value, Mapping) else value
    if merged["predictor"] not in PREDICTORS:
        raise ValueError(f"unknown predictor {merged['predictor']!r}")
    return merged
