"""Stored programs: a pretrained model's style predictor, CIN heads and untiled transformer, exported once with
`jax.export` and kept in the cache folder, so that a later run neither imports Flax nor builds the network nor
traces its Python.

XLA's persistent compilation cache already spares a warm command-line run the compilation, but not what comes
before it: importing Flax, building the network and tracing it, most of a one-image `arbstyle stylize`
(docs/performance.md). A stored program is the traced function itself (StableHLO) with the weights as
arguments. A run reads the verified weights, loads the program, and XLA's cache supplies the executable. The
network is built only when a program is missing (the first run, a new shape, a new version) or for what programs
do not cover (tiled and pooled forwards, checking CIN styles against the transformer's layers).

A program is found by a digest of everything it depends on: the model's name, the pinned sha256 of its weights,
its config, the precision, the function and its input shapes, the versions of jax and jaxlib, and the source
of this package (any code change makes new programs). Files are written atomically and read with
`jax.export.deserialize`, a flatbuffer (nothing is unpickled); one that does not load is written again.
$ARBSTYLE_PROGRAMS names another folder, or "off".

The style predictor's outputs are kept too (`results/`, a few hundred bytes per painting, read without pickle):
a later run with the same painting at the same size takes its embedding from there.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from arbstyle import images

FORMAT = 1
PROGRAMS_ENV = "ARBSTYLE_PROGRAMS"


@dataclass(frozen=True)
class Part:
    """A network as a pure function of (state, *inputs), its state (an nnx.State) and where its variables sit in
    the model's weights file ("predictor/", "heads/", "transformer/")."""

    function: Callable
    state: Any
    prefix: str

    @functools.cached_property
    def jitted(self):
        return jax.jit(self.function)


@dataclass(frozen=True)
class Program:
    """A loaded program, bound to its weights: `program(*inputs)`."""

    compiled: Any  # jax.stages.Compiled of (leaves, *inputs)
    leaves: list
    meta: dict

    def __call__(self, *inputs):
        return self.compiled(self.leaves, *inputs)


def folder() -> Path | None:
    """Where programs are kept: $ARBSTYLE_PROGRAMS, else `programs/` in the weights cache; None when "off" or
    when the folder cannot be made (a read-only home runs without them)."""
    from arbstyle.paths import cache_dir

    env = os.environ.get(PROGRAMS_ENV, "")
    if env.lower() == "off":
        return None
    try:
        path = Path(env).expanduser() if env else cache_dir() / "programs"
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return path


@functools.cache
def source_digest() -> str:
    """sha256 over this package's Python source: the networks, their conversion and the code that traces them."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _spec(tree) -> list:
    """Shapes, dtypes and structure of an input pytree, as JSON-able text."""
    leaves, treedef = jax.tree.flatten(tree)
    return [str(treedef)] + [[list(a.shape), str(a.dtype)] for a in leaves]


def _path_key(path) -> str:
    parts = []
    for entry in path:
        if isinstance(entry, jax.tree_util.GetAttrKey):
            if entry.name != "value":  # nnx.Variable's own leaf
                parts.append(entry.name)
        elif isinstance(entry, jax.tree_util.DictKey):
            parts.append(str(entry.key))
        elif isinstance(entry, jax.tree_util.SequenceKey):
            parts.append(str(entry.idx))
        else:
            parts.append(str(entry))
    return "/".join(parts)


class ProgramStore:
    """The stored programs of one pretrained model at one precision.

    name: a pretrained name of `arbstyle.weights.registry`; overrides: its build-only config keys;
    where: the folder (see `folder()`).
    """

    def __init__(self, name: str, overrides: dict, precision: str, where: Path):
        from arbstyle.weights import pretrained, registry

        self.name = name
        self.overrides = dict(overrides)
        self.config = registry.pretrained_config(name, **self.overrides)
        self.where = Path(where)
        pins = [pretrained.artifact(name).converted_sha256]
        trunk = pretrained.artifact(name).trunk
        if trunk:
            pins.append(pretrained.artifact(trunk).converted_sha256)
        self.identity = {"format": FORMAT, "model": name, "weights": pins, "config": self.config,
                         "precision": precision, "jax": _version("jax"), "jaxlib": _version("jaxlib"),
                         "source": source_digest()}
        self._weights: dict = {}
        self._loaded: dict[str, Program] = {}

    def weights(self, keys) -> dict:
        """The model's weights named by `keys` (state paths), read and verified against their pinned sha256 on
        first use; a program needs only its own (a third of the Inception trunk's file for the predictor)."""
        from arbstyle.weights import registry

        missing = [k for k in keys if k not in self._weights]
        if missing:
            self._weights.update(registry.load_arrays(self.name, keys=set(missing)))
        return self._weights

    def build_model(self):
        """The network itself, for what programs do not cover."""
        from arbstyle._flax import import_flax_without_ipython
        from arbstyle.weights import registry

        import_flax_without_ipython()
        return registry.load_model(self.name, **self.overrides)

    def program(self, function: str, inputs: tuple, part: Callable[[], Part],
                describe: Callable[[Any], dict] | None = None) -> Program:
        """The program of `function` for inputs shaped like `inputs`: loaded, or else exported from `part()` (which
        may build the network), stored and loaded. describe(compiled) adds facts to the stored record (the
        transformer's memory footprint), so that later runs need not work them out again."""
        spec = _spec(inputs)
        key = self._digest(function, inputs).hexdigest()
        if key in self._loaded:
            return self._loaded[key]
        path = self.where / f"{function}-{key[:32]}.npz"
        program = self._read(path, inputs, key)
        if program is None:
            program = self._export(path, key, function, spec, inputs, part(), describe)
        self._loaded[key] = program
        return program

    def _digest(self, function: str, inputs: tuple):
        """sha256 over what a program of `function` for inputs shaped like `inputs` depends on."""
        return hashlib.sha256(json.dumps([self.identity, function, _spec(inputs)], sort_keys=True).encode())

    def remembered(self, function: str, inputs: tuple, compute: Callable[[], Any]) -> np.ndarray:
        """The float32 output of `function` on exactly these input arrays, kept from an earlier run when there is
        one (`results/` in the store, keyed like a program plus a sha256 of the inputs' bytes), else compute()d
        and kept. For the style predictor: a painting used again skips its weights, its program and its pass.
        A kept result must be float32, finite and have one row per input row, or it is computed again."""
        digest = self._digest(function, inputs)
        for x in inputs:
            digest.update(np.ascontiguousarray(x).tobytes())
        path = self.where / "results" / f"{function}-{digest.hexdigest()[:32]}.npy"
        rows = np.shape(inputs[0])[0]
        try:
            out = np.load(path, allow_pickle=False)
            if out.dtype == np.float32 and out.ndim >= 1 and out.shape[0] == rows and np.isfinite(out).all():
                return out
        except (OSError, ValueError, EOFError):
            pass
        out = np.asarray(compute(), np.float32)
        _write_atomic(path, lambda handle: np.save(handle, out, allow_pickle=False))
        return out

    def _bind(self, exported, meta: dict, inputs: tuple, describe=None) -> Program:
        arrays = self.weights(meta["keys"])
        leaves = jax.device_put([np.asarray(arrays[k], dtype) for k, dtype in zip(meta["keys"], meta["dtypes"])])
        with _without_lapack_setup(exported):
            lowered = jax.jit(exported.call).lower(leaves, *inputs)
        compiled = lowered.compile()  # from XLA's persistent cache, when warm
        if describe is not None:
            meta = {**meta, **describe(compiled)}
        return Program(compiled, leaves, meta)

    def _read(self, path: Path, inputs: tuple, key: str) -> Program | None:
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                blob = bytearray(data["program"].tobytes())
            if meta.get("key") != key:
                return None
            exported = jax.export.deserialize(blob)
            return self._bind(exported, meta, inputs)
        except Exception:  # noqa: BLE001  a damaged or foreign file: export again, which replaces it
            return None

    def _export(self, path: Path, key: str, function: str, spec: list, inputs: tuple, part: Part,
                describe) -> Program:
        flat, treedef = jax.tree_util.tree_flatten_with_path(part.state)
        keys = [part.prefix + _path_key(p) for p, _ in flat]
        values = [leaf for _, leaf in flat]
        arrays = self.weights(keys)
        for k, leaf in zip(keys, values):  # every variable must be a weight as stored, else nothing is exported
            stored = arrays.get(k)
            if stored is None or not np.array_equal(np.asarray(jnp.asarray(stored, leaf.dtype)), np.asarray(leaf)):
                raise ValueError(f"{self.name}: variable {k} is not the stored weight; cannot export {function}")

        def pure(leaves, *args):
            return part.function(jax.tree.unflatten(treedef, leaves), *args)

        specs = [jax.ShapeDtypeStruct(v.shape, v.dtype) for v in values]
        exported = jax.export.export(jax.jit(pure))(specs, *inputs)
        meta = {"key": key, "identity": self.identity, "function": function, "inputs": spec, "keys": keys,
                "dtypes": [str(v.dtype) for v in values]}
        program = self._bind(exported, meta, inputs, describe)
        _write(path, exported.serialize(), program.meta)
        return program


_LAPACK_CALL = re.compile(rb"(?<![\w.])lapack_[sdcz]\w*")


@contextlib.contextmanager
def _without_lapack_setup(exported):
    """Lower a stored program without first loading LAPACK, when the program calls no LAPACK routine.

    jax's lowering of every exported program on the CPU initialises its LAPACK kernels, which imports
    scipy.linalg: 0.15-0.24 s of a 1.9 s warm command-line run on the 2-core machine, for networks that use no
    linear algebra. The LAPACK kernels are custom calls (lapack_sgetrf_ffi, ...) whose names the serialized
    module holds as plain text, beside source locations that may say "lapack" too (only a false alarm: then
    LAPACK is set up as usual). A jax without the hook lowers as usual.
    """
    try:
        from jax._src.export import _export
    except ImportError:
        _export = None
    setup = getattr(_export, "_ensure_backends_initialized", None)
    if setup is None or _LAPACK_CALL.search(bytes(exported.mlir_module_serialized)):
        yield
        return
    _export._ensure_backends_initialized = lambda platforms: None
    try:
        yield
    finally:
        _export._ensure_backends_initialized = setup


def _write(path: Path, blob: bytes, meta: dict) -> None:
    _write_atomic(path, lambda handle: np.savez(handle, program=np.frombuffer(blob, np.uint8),
                                                meta=np.asarray(json.dumps(meta))))


def _write_atomic(path: Path, write: Callable) -> None:
    """write(binary file) to a temporary file renamed to `path`; a cache that cannot be written only costs the
    next run the work again."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = images.temp_file(path)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    except OSError:
        pass
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def open_store(name: str, overrides: dict, precision: str) -> ProgramStore | None:
    """The store of a pretrained model, or None (not a pretrained name, or programs are off)."""
    from arbstyle.weights import registry

    where = folder()
    if where is None or name not in registry.names():
        return None
    return ProgramStore(name, overrides, precision, where)
