"""torchzip reads real torch.save / torch.jit.save archives (written by torch, see tests/data/torchzip/make_fixture.py)
exactly as torch does, and refuses hostile or damaged ones."""
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from arbstyle.safepickle import UnsafePickleError
from arbstyle.weights import torchzip

DATA = Path(__file__).parent / "data" / "torchzip"


@pytest.fixture(scope="module")
def expected():
    with np.load(DATA / "expected.npz", allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def _rewrite(src: Path, dst: Path, replace: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, replace.get(info.filename, zin.read(info.filename)))
    return dst


def test_checkpoint_matches_torch(expected):
    tree = torchzip.load(DATA / "checkpoint.pt")
    assert tree["step"] == 12
    arrays = torchzip.flatten(tree)
    for name in ["transposed", "sliced", "half", "mask", "long", "uint8", "scalar",
                 "nested.0", "nested.1.view_a", "nested.1.view_b"]:
        want = expected[f"checkpoint/{name}"]
        got = arrays[name]
        assert got.dtype == want.dtype and got.shape == want.shape, name
        np.testing.assert_array_equal(got, want, err_msg=name)
    assert str(arrays["bfloat16"].dtype) == "bfloat16"
    np.testing.assert_array_equal(arrays["bfloat16"].astype(np.float32), expected["checkpoint/bfloat16_as_f32"])
    # views come back as owned, contiguous arrays, not windows into a shared buffer
    assert arrays["transposed"].flags.c_contiguous and arrays["transposed"].flags.owndata


def test_torchscript_module_matches_torch(expected):
    module = torchzip.load(DATA / "script.pt")
    assert isinstance(module, torchzip.ScriptObject)
    assert module.torch_type.startswith("__torch__.")
    arrays = torchzip.flatten(module)
    names = [n.split("/", 1)[1] for n in expected if n.startswith("script/")]
    assert set(names) <= set(arrays)
    for name in names:
        np.testing.assert_array_equal(arrays[name], expected[f"script/{name}"], err_msg=name)


def test_hostile_global_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            import os
            return os.system, (f"touch {marker}",)

    bad = _rewrite(DATA / "checkpoint.pt", tmp_path / "bad.pt",
                   {"checkpoint/data.pkl": pickle.dumps({"w": Payload()}, protocol=2)})
    with pytest.raises(UnsafePickleError, match=r"bad\.pt.*(posix|os)"):
        torchzip.load(bad)
    assert not marker.exists()


def test_truncated_storage_names_file(tmp_path):
    with zipfile.ZipFile(DATA / "checkpoint.pt") as z:
        raw = z.read("checkpoint/data/0")
    bad = _rewrite(DATA / "checkpoint.pt", tmp_path / "short.pt", {"checkpoint/data/0": raw[:-4]})
    with pytest.raises(torchzip.TorchZipError, match=r"short\.pt: storage checkpoint/data/0 .*truncated"):
        torchzip.load(bad)


def test_not_an_archive(tmp_path):
    path = tmp_path / "plain.pt"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(torchzip.TorchZipError, match=r"plain\.pt: not a PyTorch zip archive"):
        torchzip.load(path)
