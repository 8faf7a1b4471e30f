"""Sets XLA's CPU flags before JAX creates its backend.

XLA's YNNPACK fusion of individual convolutions is 2-5x slower on the reflect-padded convs that every network here is
made of; excluding it is the single biggest CPU speed-up available. The flag only exists in recent jaxlib builds and an
unknown flag aborts the process, so it is gated on the version, and a user's own choice in XLA_FLAGS always wins.
"""
from __future__ import annotations

import importlib.metadata
import os

_YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"
_FIRST_JAXLIB_WITH_FLAG = (0, 10)  # seen accepted by jaxlib 0.10.2; older builds reject it


def _version(package: str) -> tuple[int, ...]:
    try:
        text = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return ()
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def configure_cpu_flags() -> bool:
    """Adds the conv flag to XLA_FLAGS when it is safe; returns whether it is in effect."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_experimental_ynn_fusion_type" in flags:
        return _YNN_FLAG in flags  # the user decided
    if _version("jaxlib") < _FIRST_JAXLIB_WITH_FLAG:
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {_YNN_FLAG}".strip()
    return True
