"""Read PyTorch zip archives (torch.save since 1.6, and TorchScript `torch.jit.save`) with numpy only.

Such an archive is a zip holding `<prefix>/data.pkl` (a pickle of the object tree) and one file per tensor
storage, `<prefix>/data/<key>` (TorchScript keeps tensor constants in `constants.pkl` / `constants/<key>`).
The pickle names storages through persistent ids ('storage', <StorageType>, key, location, numel) and rebuilds
tensors with `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`.

We unpickle with `arbstyle.safepickle.restricted_loads`: only the handful of torch rebuild functions are
admitted, each replaced by a numpy stand-in, and TorchScript's own classes (`__torch__.*`, the compiled
modules) become inert attribute records. Nothing from torch is imported and no other global can resolve.
"""
from __future__ import annotations

import collections
import pickle
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from arbstyle.safepickle import UnsafePickleError, restricted_loads


class TorchZipError(ValueError):
    """The file is not a PyTorch zip archive we can read (message names the file and the problem)."""


def _bfloat16():
    import ml_dtypes  # ships with jax; numpy itself has no bfloat16

    return np.dtype(ml_dtypes.bfloat16)


# torch storage class -> numpy dtype (little-endian unless the archive says otherwise)
_STORAGE_DTYPES: dict[str, Any] = {
    "DoubleStorage": "f8", "FloatStorage": "f4", "HalfStorage": "f2", "BFloat16Storage": _bfloat16,
    "LongStorage": "i8", "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?", "ComplexDoubleStorage": "c16", "ComplexFloatStorage": "c8",
    "UntypedStorage": "u1",
}


class StorageType:
    """Stand-in for a `torch.<X>Storage` class: only its element type matters to us."""

    def __init__(self, name: str):
        self.name = name
        spec = _STORAGE_DTYPES[name]
        self.dtype = spec() if callable(spec) else np.dtype(spec)

    def __repr__(self):
        return f"StorageType({self.name})"


class ScriptObject:
    """An inert record for a TorchScript class instance (`__torch__.*`): its pickled attributes, no code."""

    torch_type = "?"

    def __repr__(self):
        return f"<{self.torch_type} {sorted(vars(self))}>"


_SCRIPT_CLASSES: dict[str, type] = {}


def _script_class(qualified: str) -> type:
    # One inert subclass per TorchScript type, so that records say what they were (InceptionA, Conv2dLayer...).
    cls = _SCRIPT_CLASSES.get(qualified)
    if cls is None:
        cls = type(qualified.rsplit(".", 1)[-1], (ScriptObject,), {"torch_type": qualified, "__module__": __name__})
        _SCRIPT_CLASSES[qualified] = cls
    return cls


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    """torch._utils._rebuild_tensor_v2 in numpy: a strided view of the storage, copied to an owned array."""
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if any(s < 0 for s in size) or any(s < 0 for s in stride) or storage_offset < 0:
        raise TorchZipError(f"tensor with negative size/stride/offset {size} {stride} {storage_offset}")
    if size and min(size) == 0:
        return np.zeros(size, storage.dtype)
    last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= storage.size:
        raise TorchZipError(f"tensor of size {size}, stride {stride}, offset {storage_offset} "
                            f"reaches past its storage of {storage.size} elements")
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(storage[storage_offset:], shape=size,
                                           strides=tuple(s * item for s in stride), writeable=False)
    return np.array(view, dtype=storage.dtype.newbyteorder("="), order="C", copy=True)  # native, owned


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    return data


def _identity_list(items):
    return list(items)


def _restore_type_tag(value, type_str):
    return value  # TorchScript re-tags Dict/List element types; irrelevant to plain containers


class _TorchAllowList(Mapping):
    """Globals a torch archive may name: fixed torch rebuild helpers, and inert records for `__torch__.*`."""

    _FIXED = {
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch.jit._pickle", "build_intlist"): _identity_list,
        ("torch.jit._pickle", "build_doublelist"): _identity_list,
        ("torch.jit._pickle", "build_boollist"): _identity_list,
        ("torch.jit._pickle", "build_tensorlist"): _identity_list,
        ("torch.jit._pickle", "restore_type_tag"): _restore_type_tag,
        ("collections", "OrderedDict"): collections.OrderedDict,
    }

    def __getitem__(self, key):
        module, name = key
        if key in self._FIXED:
            return self._FIXED[key]
        if module in ("torch", "torch.storage") and name in _STORAGE_DTYPES:
            return StorageType(name)
        if module == "__torch__" or module.startswith("__torch__."):
            return _script_class(f"{module}.{name}")
        raise KeyError(key)

    def __iter__(self) -> Iterator:
        return iter(self._FIXED)

    def __len__(self) -> int:
        return len(self._FIXED)


TORCH_ALLOWED = _TorchAllowList()


class _StorageReader:
    """persistent_load for one pickle: ('storage', type, key, location, numel) -> 1-D numpy array."""

    def __init__(self, archive: zipfile.ZipFile, folder: str, path: Path, byteorder: str):
        self.archive, self.folder, self.path, self.byteorder = archive, folder, path, byteorder
        self.cache: dict[str, np.ndarray] = {}  # views of one storage share it

    def __call__(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise UnsafePickleError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, StorageType):
            raise UnsafePickleError(f"persistent id names {storage_type!r}, not a torch storage type")
        key = str(key)
        if key in self.cache:
            return self.cache[key]
        name = f"{self.folder}/{key}"
        try:
            raw = self.archive.read(name)
        except KeyError:
            raise TorchZipError(f"{self.path}: storage {name} is missing from the archive") from None
        dtype = storage_type.dtype.newbyteorder("<" if self.byteorder == "little" else ">")
        if storage_type.name == "UntypedStorage":
            numel = int(numel)  # counted in bytes
        if len(raw) != int(numel) * dtype.itemsize:
            raise TorchZipError(f"{self.path}: storage {name} holds {len(raw)} bytes, expected "
                                f"{numel} x {dtype.itemsize} ({storage_type.name}); the file is truncated or corrupt")
        array = np.frombuffer(raw, dtype=dtype)
        self.cache[key] = array
        return array


def _prefix(names: list[str], path: Path) -> str:
    pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
        raise TorchZipError(f"{path}: not a PyTorch zip archive (no single <prefix>/data.pkl inside)")
    return pickles[0].split("/", 1)[0]


def load(path: str | Path, pickle_name: str = "data") -> Any:
    """Unpickle `<prefix>/<pickle_name>.pkl` of a torch zip archive, tensors as numpy arrays.

    `pickle_name` is "data" (the saved object / TorchScript module tree) or "constants" (TorchScript tensor
    constants). TorchScript modules come back as `ScriptObject` records; plain checkpoints as dicts.
    """
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        if isinstance(err, (FileNotFoundError, IsADirectoryError, PermissionError)):
            raise
        raise TorchZipError(f"{path}: not a PyTorch zip archive ({err})") from None
    with archive:
        names = archive.namelist()
        prefix = _prefix(names, path)
        byteorder = "little"
        if f"{prefix}/byteorder" in names:
            byteorder = archive.read(f"{prefix}/byteorder").decode().strip()
            if byteorder not in ("little", "big"):
                raise TorchZipError(f"{path}: unknown byteorder {byteorder!r}")
        pkl = f"{prefix}/{pickle_name}.pkl"
        if pkl not in names:
            raise TorchZipError(f"{path}: {pkl} is missing from the archive")
        folder = f"{prefix}/data" if pickle_name == "data" else f"{prefix}/{pickle_name}"
        reader = _StorageReader(archive, folder, path, byteorder)
        try:
            return restricted_loads(archive.read(pkl), TORCH_ALLOWED, persistent_load=reader)
        except TorchZipError:
            raise
        except UnsafePickleError as err:
            raise UnsafePickleError(f"{path}: {err}") from None
        except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, TypeError, IndexError) as err:
            raise TorchZipError(f"{path}: corrupt archive ({type(err).__name__}: {err})") from None


def flatten(tree: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """Dotted names -> arrays for every array leaf under dicts, lists and ScriptObject records
    (the names `torch.nn.Module.state_dict()` would give, e.g. `net.layers.conv.weight`)."""
    out: dict[str, np.ndarray] = {}

    def visit(node, name):
        if isinstance(node, np.ndarray):
            out[name] = node
        elif isinstance(node, ScriptObject):
            for key, value in vars(node).items():
                visit(value, f"{name}.{key}" if name else key)
        elif isinstance(node, Mapping):
            for key, value in node.items():
                visit(value, f"{name}.{key}" if name else str(key))
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                visit(value, f"{name}.{i}" if name else str(i))

    visit(tree, prefix)
    return out


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """All tensors of a torch zip archive's object tree, by dotted name, in the pickle's order."""
    return flatten(load(path))
