"""Architecture of the networks against Magenta's reference model, and the CIN / interpolation math."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from arbstyle.model import apply_strength, build_model, mix_embeddings
from arbstyle.nets.layers import conditional_instance_norm
from arbstyle.nets.style_predictor import param_count
from arbstyle.nets.transformer import Transformer


@pytest.fixture(scope="module")
def model():
    return build_model()


def test_parameter_counts_equal_magentas_model(model):
    assert param_count(model.predictor.trunk) == 8_956_448  # Inception-v3 to Mixed_6e
    assert param_count(model.predictor.bottleneck) == 76_900
    assert param_count(model.heads) == 278_558
    assert sum(2 * c for _, c in model.transformer.cin_layers) == 2_758
    assert param_count(model.transformer) == 1_674_656
    assert param_count(model) == 10_986_562
    assert param_count(model.predictor.trunk, nnx.BatchStat) == 18_816
    assert param_count(model.transformer, nnx.BatchStat) == 448
    assert param_count(model, nnx.BatchStat) == 19_264


def test_heads_follow_the_transformer_layers(model):
    assert model.heads.names == [name for name, _ in model.transformer.cin_layers]
    mobile = Transformer(0.25, rngs=nnx.Rngs(0))
    assert [c for _, c in mobile.cin_layers] == [32] * 10 + [16, 8, 3]


@pytest.mark.parametrize("size", [(255, 301), (64, 64), (17, 33)])
def test_output_has_the_inputs_exact_size(size):
    model = build_model(predictor="table", num_styles=2, alpha=0.25)
    model.eval()
    content = jax.random.uniform(jax.random.key(0), (1, *size, 3))
    out = model.stylize(content, jnp.array([1]))
    assert out.shape == (1, *size, 3)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_style_prediction_and_stylize_shapes(model):
    model.eval()
    style = jax.random.uniform(jax.random.key(1), (2, 96, 96, 3))
    emb = model.embed(style)
    assert emb.shape == (2, 100)
    params = model.style_params(emb)
    assert params["expand/conv3"][0].shape == (2, 3)


def test_cin_matches_numpy_reference():
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, (2, 5, 7, 4)).astype(np.float32)
    gamma = rng.normal(size=(2, 4)).astype(np.float32)
    beta = rng.normal(size=(2, 4)).astype(np.float32)
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = x.var(axis=(1, 2), keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-5) * gamma[:, None, None] + beta[:, None, None]
    got = conditional_instance_norm(jnp.asarray(x), gamma, beta)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4, atol=1e-4)


def test_injected_whole_image_statistics_reproduce_the_forward_pass():
    """The tiling hooks: statistics read at `stop_at` and fed back through `stats` give the same image."""
    model = build_model(predictor="table", num_styles=1, alpha=0.25)
    model.eval()
    t = model.transformer
    x = jax.random.uniform(jax.random.key(2), (1, 40, 36, 3))
    style = model.table(jnp.array([0]))
    stats = {}
    for name, _ in t.cin_layers:
        pre = t(x, style, stats=stats, stop_at=name).astype(jnp.float32)
        stats[name] = (pre.mean(axis=(1, 2)), pre.var(axis=(1, 2)))
    np.testing.assert_allclose(np.asarray(t(x, style, stats=stats)), np.asarray(t(x, style)), atol=1e-5)
    shifted = {k: (m + 1.0, v) for k, (m, v) in stats.items()}
    assert float(jnp.abs(t(x, style, stats=shifted) - t(x, style)).max()) > 1e-3


def test_mixing_and_strength():
    e = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(np.asarray(mix_embeddings(e, [3, 1])), [0.75, 0.25])
    np.testing.assert_allclose(np.asarray(apply_strength(e[0], e[1], 0.25)), [0.25, 0.75])
    with pytest.raises(ValueError):
        mix_embeddings(e, [1, -1])
    with pytest.raises(ValueError):
        apply_strength(e[0], e[1], 1.5)


def test_table_model_starts_at_identity_and_mixes():
    model = build_model(predictor="table", num_styles=3, alpha=0.25)
    gamma, beta = model.style_params(jnp.array([2]))["residual1/conv1"]
    assert jnp.all(gamma == 1) and jnp.all(beta == 0)
    mixed = model.table.mix(jnp.array([[0.5, 0.5, 0.0]]))
    assert mixed["expand/conv3"][0].shape == (1, 3)
    with pytest.raises(TypeError):
        model.embed(jnp.zeros((1, 8, 8, 3)))


def test_forward_can_stop_and_resume_at_every_stage():
    model = build_model(predictor="table", num_styles=1, alpha=0.25)
    model.eval()
    t = model.transformer
    x = jax.random.uniform(jax.random.key(3), (1, 36, 28, 3))
    style = model.table(jnp.array([0]))
    full = t(x, style)
    for stage in t.STAGES[1:]:
        entering = t(x, style, stop_at=stage)
        resumed = t(entering, style, start_at=stage)
        np.testing.assert_allclose(np.asarray(resumed[:, :36, :28]), np.asarray(full), atol=1e-6)


def test_kernel_init_is_nnx_default_but_zeros_for_a_shapes_only_key():
    # random initialisation (training from scratch) must not change; abstract builds only need shapes
    from arbstyle.nets.layers import ShapesOnly, kernel_init

    default = nnx.Conv(8, 16, (3, 3), rngs=nnx.Rngs(0))
    ours = nnx.Conv(8, 16, (3, 3), kernel_init=kernel_init, rngs=nnx.Rngs(0))
    assert np.array_equal(default.kernel[...], ours.kernel[...]) and float(np.abs(ours.kernel[...]).max()) > 0
    zeros = kernel_init(ShapesOnly(), (3, 3, 8, 16), jnp.float32)
    assert zeros.shape == (3, 3, 8, 16) and not np.any(zeros)
