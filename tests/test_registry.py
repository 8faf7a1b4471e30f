"""`load_model`: pretrained names and training workdirs through one door, built by `build_model`."""
import json

import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx

from arbstyle.model import build_model
from arbstyle.nets.qdq import Quantization
from arbstyle.training import checkpoints
from arbstyle.weights.registry import RegistryError, load_model, names


def _variables(model, kind=nnx.Variable):
    return {"/".join(map(str, p)): np.asarray(v.get_value()) for p, v in nnx.to_flat_state(nnx.state(model, kind))}


def test_names():
    assert names() == ["ghiasi-inception", "magenta-mobile"]


def test_magenta_mobile_exact_and_float_share_their_weights():
    exact = load_model("magenta-mobile", quantize_activations=True)
    float_model = load_model("magenta-mobile")  # float activations are the default
    assert exact.config["quantize_activations"] and not float_model.config["quantize_activations"]
    assert _variables(exact, Quantization) and not _variables(float_model, Quantization)
    shared = _variables(float_model, nnx.Param)
    assert shared.keys() <= _variables(exact, nnx.Param).keys()
    for key, value in shared.items():
        np.testing.assert_array_equal(value, _variables(exact, nnx.Param)[key])


def test_magenta_mobile_float_stylizes_any_size():
    model = load_model("magenta-mobile", quantize_activations=False)
    rng = np.random.default_rng(0)
    style = jnp.asarray(rng.random((1, 64, 64, 3), np.float32))
    content = jnp.asarray(rng.random((1, 37, 50, 3), np.float32))
    embedding = model.embed(style)
    out = np.asarray(model.stylize(content, embedding))
    assert embedding.shape == (1, 100) and out.shape == (1, 37, 50, 3)
    assert 0.0 <= out.min() and out.max() <= 1.0 and out.std() > 0.01


def test_unknown_name_and_paths(tmp_path):
    with pytest.raises(RegistryError,
                       match="no such pretrained model \\(ghiasi-inception, magenta-mobile\\) or training workdir"):
        load_model("magenta-large")
    with pytest.raises(RegistryError, match="not a training workdir \\(no config.json inside\\)"):
        load_model(tmp_path)
    with pytest.raises(RegistryError, match="trunk weights, not a whole model"):
        from arbstyle.weights.registry import load_pretrained

        load_pretrained("inception-v3")


def test_a_training_workdir_loads_through_the_same_door(tmp_path):
    config = {"predictor": "table", "num_styles": 2, "alpha": 0.25}
    model = build_model(config, seed=3)
    workdir = tmp_path / "run"
    checkpoints.write_json_atomic(workdir / checkpoints.CONFIG_FILE, {"model": model.config})
    mngr = checkpoints.manager(workdir)
    state = checkpoints.pure(nnx.state(model))
    mngr.save(7, args=ocp.args.Composite(**{checkpoints.MODEL_ITEM: ocp.args.StandardSave(state)}))
    mngr.wait_until_finished()
    mngr.close()

    loaded = load_model(workdir)
    assert loaded.config == model.config
    want, got = _variables(model), _variables(loaded)
    assert want.keys() == got.keys()
    for key in want:
        np.testing.assert_array_equal(got[key], want[key])
    assert loaded.transformer.contract_bn1.use_running_average  # handed out in inference mode
    with pytest.raises(RegistryError, match="config overrides"):
        load_model(workdir, alpha=1.0)


@pytest.mark.parametrize("stride, size", [(2, (15, 17)), (1, (16, 16)), (2, (16, 16))])
def test_mobilenet_fast_depthwise_is_the_grouped_convolution(stride, size):
    """The float trunk's shift-and-add depthwise conv equals XLA's grouped conv with TF SAME padding."""
    from arbstyle.nets.mobilenet import ConvAct

    layer = ConvAct(24, 24, 3, stride, groups=24, rngs=nnx.Rngs(0))
    x = jnp.asarray(np.random.default_rng(0).random((2, *size, 24), np.float32))
    fast, reference = np.asarray(layer._depthwise(x)), np.asarray(layer.conv(x))
    assert fast.shape == reference.shape
    np.testing.assert_allclose(fast, reference, atol=1e-5)


def test_a_tampered_cache_with_a_rewritten_record_is_refused(tmp_path, monkeypatch, capsys):
    """Altered weights whose record was rewritten to match: the sha256 pinned in the package still refuses them."""
    from arbstyle import cli
    from arbstyle.weights import pretrained

    monkeypatch.setenv("ARBSTYLE_HOME", str(tmp_path))
    arrays = pretrained.load_arrays("magenta-mobile")
    arrays["predictor/bottleneck/bias"] = arrays["predictor/bottleneck/bias"] + 0.5
    npz, sidecar = pretrained.paths("magenta-mobile")
    np.savez(npz, **arrays)
    record = json.loads(sidecar.read_text())
    record.update(sha256=pretrained.sha256_file(npz), size=npz.stat().st_size)
    sidecar.write_text(json.dumps(record))
    with pytest.raises(pretrained.WeightsError, match="does not match the pinned") as err:
        load_model("magenta-mobile", quantize_activations=False)
    assert str(npz) in str(err.value) and "\n" not in str(err.value) and "fetch magenta-mobile --force" in str(err.value)
    assert cli.main(["weights", "verify", "magenta-mobile"]) == 2
    assert "does not match the pinned" in capsys.readouterr().err
    pretrained.fetch("magenta-mobile", force=True)  # the advertised fix converts the pinned source again
    assert load_model("magenta-mobile").predictor.bottleneck.bias.shape == (100,)


@pytest.mark.parametrize("config", [
    {"predictor": "mobilenet", "alpha": 0.25},
    {"predictor": "inception", "alpha": 0.25},
    {"predictor": "table", "num_styles": 3, "alpha": 0.25},
    "magenta-mobile-exact",
])
def test_abstract_model_has_the_structure_of_build_model(config):
    # load_pretrained fills abstract_model(config); it must be the very graph build_model makes, variable for
    # variable (same paths, types, shapes, dtypes), only built without RNG bookkeeping.
    import jax

    from arbstyle.model import abstract_model
    from arbstyle.weights import pretrained

    if config == "magenta-mobile-exact":
        config = dict(pretrained.model_config("magenta-mobile"), quantize_activations=True)
    fast = abstract_model(config)
    reference = nnx.eval_shape(lambda: build_model(config))
    fast_def, fast_state = nnx.split(fast)
    ref_def, ref_state = nnx.split(reference)
    assert fast_def == ref_def

    def described(state):
        return {"/".join(map(str, p)): (type(v).__name__, v.shape, v.dtype) for p, v in nnx.to_flat_state(state)}

    assert described(fast_state) == described(ref_state)
    assert all(isinstance(v.get_value(), jax.ShapeDtypeStruct) for _, v in nnx.to_flat_state(fast_state))
