"""What measured a figure: the machine, its load and the package versions, stored beside every result.

Timings on a shared machine mean little without the load they were taken under, so benchmarks and
`arbstyle evaluate` record this next to their numbers.
"""
from __future__ import annotations

import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

BASE_PACKAGES = ("arbstyle", "jax", "jaxlib", "flax", "numpy")


def _proc_field(path: str, key: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    return _proc_field("/proc/cpuinfo", "model name") or platform.processor() or platform.machine()


def int8_products_are_exact() -> bool:
    """Whether onnxruntime's int8 convolutions sum their products exactly on this CPU.

    On x86-64 without VNNI (AVX512-VNNI or AVX-VNNI), MLAS multiplies uint8 activations by int8 weights with
    VPMADDUBSW, which adds each pair of products into an int16 with saturation: large pairs are clipped, so the
    released int8 graph computes something else there (docs/magenta_import.md). Exact mode replays the exact
    integer sums that VNNI and ARM CPUs compute.
    """
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return True
    flags = set((_proc_field("/proc/cpuinfo", "flags") or "").split())
    return bool(flags & {"avx512_vnni", "avx_vnni"})


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, or None where the OS has none."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def settled_load_average(threshold: float = 1.0, timeout: float = 180.0) -> list[float] | None:
    """The load averages once a benchmark's own work has left the 1-minute figure.

    Read right after a run, the 1-minute average still holds the benchmark itself (a 2-core job reads ~2 and
    decays with a one-minute time constant), so "quiet after" would never hold. Waits until it falls under
    `threshold` or `timeout` seconds pass; a reading still above it means something else kept the machine busy.
    """
    deadline = time.monotonic() + timeout
    load = load_average()
    while load is not None and load[0] >= threshold and time.monotonic() < deadline:
        time.sleep(5)
        load = load_average()
    return load


def versions(packages=()) -> dict[str, str]:
    """Installed versions of BASE_PACKAGES and `packages`; ones not installed are left out."""
    out = {}
    for package in dict.fromkeys((*BASE_PACKAGES, *packages)):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_revision() -> str | None:
    """The short commit of the checkout arbstyle runs from; None for an installed (non-checkout) copy."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def describe(packages=()) -> dict:
    """The machine and software as a JSON-ready dict. Imports JAX (for the backend), so call it after setup."""
    import jax

    memory_kib = _proc_field("/proc/meminfo", "MemTotal")
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    return {
        "cpu": cpu_name(),
        "logical_cores": os.cpu_count(),
        "usable_cores": affinity,
        "memory_gib": round(int(memory_kib.split()[0]) / 2**20, 1) if memory_kib else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "onnxruntime_int8_exact": int8_products_are_exact(),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "versions": versions(packages),
        "arbstyle_commit": git_revision(),
        "load_average_1_5_15min": load_average(),
    }


def summary(info: dict) -> str:
    """One line for a results page from `describe()`'s dict."""
    v = info.get("versions", {})
    software = ", ".join(f"{k} {v[k]}" for k in v if k not in ("arbstyle", "numpy"))
    return (f"{info['cpu']}, {info['usable_cores']} usable cores, {info['memory_gib']} GiB; "
            f"Python {info['python']}; {software}; backend {info['backend']}; "
            f"arbstyle {info['arbstyle_commit'] or v.get('arbstyle', '?')}; "
            f"load average {info['load_average_1_5_15min']} (1/5/15 min) when described")


__all__ = ["describe", "summary", "versions", "load_average", "cpu_name", "git_revision", "int8_products_are_exact",
           "settled_load_average"]
