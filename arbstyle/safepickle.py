"""A restricted unpickler: globals resolve only from an explicit allow-list.

A pickle is a program: any GLOBAL/STACK_GLOBAL opcode can name a callable (``os.system``, ``builtins.eval``)
that a later REDUCE calls with attacker-chosen arguments. Refusing every global that is not in the
allow-list stops that before anything runs, while numpy arrays still rebuild from their few constructors.
"""
from __future__ import annotations

import codecs
import io
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list (or is otherwise not loadable safely)."""


def _latin1_encode(text: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    # Protocol-2 pickles spell raw bytes as _codecs.encode(str, 'latin1'); admit only that spelling.
    if codecs.lookup(encoding).name != "iso8859-1":
        raise UnsafePickleError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return text.encode("latin1", errors)


def _numpy_allowed() -> dict[tuple[str, str], object]:
    from numpy._core import multiarray, numeric  # numpy >= 2 home of the pickle constructors

    allowed: dict[tuple[str, str], object] = {}
    # Pickles written by numpy 1.x name `numpy.core`, by numpy 2.x `numpy._core`: same objects.
    for module in ("numpy.core", "numpy._core"):
        allowed[(f"{module}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{module}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{module}.numeric", "_frombuffer")] = numeric._frombuffer  # protocol 5 out-of-band arrays
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    allowed[("_codecs", "encode")] = _latin1_encode
    # numpy 2 pickles dtypes through their DType classes (e.g. numpy.dtypes.Float32DType).
    import numpy.dtypes as dtypes

    for name in dir(dtypes):
        cls = getattr(dtypes, name)
        if isinstance(cls, type) and issubclass(cls, np.dtype):
            allowed[("numpy.dtypes", name)] = cls
    return allowed


NUMPY_ALLOWED: Mapping[tuple[str, str], object] = _numpy_allowed()


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, allowed: Mapping[tuple[str, str], object],
                 persistent_load: Callable[[Any], Any] | None):
        super().__init__(file)
        self._allowed = allowed
        self._persistent_load = persistent_load  # e.g. torch zip checkpoints' storage records

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"refusing to load global {module}.{name}: not in the allow-list") from None

    def persistent_load(self, pid):
        if self._persistent_load is None:
            raise UnsafePickleError(f"persistent id {pid!r} found but no persistent_load handler was given")
        return self._persistent_load(pid)


def restricted_loads(data: bytes, allowed: Mapping[tuple[str, str], object] = NUMPY_ALLOWED,
                     persistent_load: Callable[[Any], Any] | None = None) -> Any:
    """Unpickle ``data``, resolving globals only from ``allowed`` ((module, name) -> object).

    Raises UnsafePickleError for any other global, before it can be called.
    """
    return _RestrictedUnpickler(io.BytesIO(data), allowed, persistent_load).load()


def load_numpy_pickle(path: str | Path) -> Any:
    """Load a pickle that holds only numpy arrays/scalars inside plain containers (dict, list, tuple)."""
    path = Path(path)
    try:
        return restricted_loads(path.read_bytes(), NUMPY_ALLOWED)
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{path}: {err}") from None
