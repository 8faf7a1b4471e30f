"""Sets XLA's CPU flags before JAX creates its backend.

XLA's YNNPACK fusion of individual convolutions is 2-5x slower on the reflect-padded convs that every network here is
made of; excluding it is the single biggest CPU speed-up available. The flag only exists in recent jaxlib builds and an
unknown flag aborts the process, so it is gated on the version, and a user's own choice in XLA_FLAGS always wins.
"""
from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

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


XLA_CACHE_BYTES = 2 * 2**30  # LRU-evicted by JAX beyond this (when `filelock` is installed); safe to delete


def enable_compilation_cache() -> None:
    """Persist compiled programs across runs (in the weights cache folder, or $ARBSTYLE_XLA_CACHE; "off" disables).

    A command-line run is one process, so without it every run pays the compilation again: measured on the
    2-core machine, the first stylize of a 512 px image went from 4.1 s to 0.8 s and the first embedding from
    2.4 s to 1.0 s on the second run.
    """
    import jax

    from arbstyle.paths import cache_dir

    if jax.config.jax_compilation_cache_dir:  # the user or the host program chose already
        return
    folder = os.environ.get("ARBSTYLE_XLA_CACHE") or str(cache_dir() / "xla-cache")
    if folder.lower() == "off":
        return
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # a read-only home: run uncached rather than fail
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    _drop_unreadable_entries(Path(folder))
    try:
        import filelock  # noqa: F401  (JAX needs it to bound the cache; without it the folder is unbounded)
    except ImportError:
        return
    _index_unindexed_entries(Path(folder))
    jax.config.update("jax_compilation_cache_max_size", XLA_CACHE_BYTES)


def _drop_unreadable_entries(folder: Path) -> None:
    """Delete a cache entry that fails to load, so that the compilation that follows writes it again.

    JAX warns about an unreadable entry (truncated by a killed process, or written by another jaxlib) and then
    never replaces it, because its writer skips keys that exist: the same warning on every run, and a compile
    every time. Deleting it makes the warning appear once. A JAX without this function keeps its behaviour.
    """
    try:
        from jax._src import compilation_cache
    except ImportError:
        return
    read = getattr(compilation_cache, "get_executable_and_time", None)
    if read is None or getattr(read, "drops_unreadable_entries", False):
        return

    def read_or_drop(cache_key, *args, **kwargs):
        try:
            return read(cache_key, *args, **kwargs)
        except Exception:
            for suffix in ("-cache", "-atime"):
                try:
                    (folder / f"{cache_key}{suffix}").unlink(missing_ok=True)
                except OSError:
                    pass  # a read-only cache: JAX keeps warning, nothing worse
            raise

    read_or_drop.drops_unreadable_entries = True
    compilation_cache.get_executable_and_time = read_or_drop


def _index_unindexed_entries(folder: Path) -> None:
    """Give every cached program the access-time file JAX's LRU eviction expects.

    Entries written while eviction was off (no `filelock` yet) or by a process killed between its two
    writes have none, and then JAX fails every later write ("Error writing persistent compilation cache
    entry ... -atime"), so nothing new is ever cached. Seen on this project's own cache folder.
    """
    try:
        for entry in folder.glob("*-cache"):
            atime = entry.with_name(entry.name.removesuffix("-cache") + "-atime")
            if not atime.exists():
                atime.write_bytes(entry.stat().st_mtime_ns.to_bytes(8, "little"))
    except OSError:
        pass  # a read-only or vanishing folder: JAX copes with reads; writes were failing anyway
