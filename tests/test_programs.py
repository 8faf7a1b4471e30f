"""Stored programs (arbstyle.inference.programs): the same results as tracing the network, without building it."""
import numpy as np
import pytest

from arbstyle.inference import programs
from arbstyle.inference.stylize import Stylizer
from stylize_helpers import photo, texture

MODEL = "magenta-mobile"


@pytest.fixture()
def program_folder(tmp_path, monkeypatch):
    folder = tmp_path / "programs"
    monkeypatch.setenv(programs.PROGRAMS_ENV, str(folder))
    return folder


@pytest.fixture(scope="module")
def traced():
    """The reference: the network built and traced in this process."""
    return Stylizer.load(MODEL, style_size=64)


def test_stored_programs_match_the_traced_network_and_build_nothing_when_warm(program_folder, traced):
    content, style = photo(48, 64, seed=1), texture(64, seed=2)
    want = traced.stylize(content, style)
    cold = Stylizer.load(MODEL, style_size=64, programs=True)
    assert cold._programs is not None
    np.testing.assert_allclose(cold.stylize(content, style), want, atol=1e-5)
    assert sorted(p.name.split("-")[0] for p in program_folder.glob("*.npz")) == ["heads", "predictor",
                                                                                  "transformer"]
    warm = Stylizer.load(MODEL, style_size=64, programs=True)
    np.testing.assert_allclose(warm.stylize(content, style), want, atol=1e-5)
    np.testing.assert_allclose(warm.embed(style), traced.embed(style), atol=1e-5)
    assert warm._model is None  # every program came from the folder: no network was built
    warm.stylize(photo(40, 40, seed=3), style)  # another shape: a new transformer program
    assert len(list(program_folder.glob("transformer-*.npz"))) == 2
    assert warm._model is not None


def test_a_damaged_program_is_exported_again(program_folder, traced):
    style = texture(64, seed=4)
    Stylizer.load(MODEL, style_size=64, programs=True).embed(style)
    (stored,) = program_folder.glob("predictor-*.npz")
    stored.write_bytes(stored.read_bytes()[:100])
    again = Stylizer.load(MODEL, style_size=64, programs=True)
    other = texture(64, seed=7)  # a painting whose embedding is not kept, so the predictor program must run
    np.testing.assert_allclose(again.embed(other), traced.embed(other), atol=1e-5)
    assert stored.stat().st_size > 100


def test_tiling_builds_the_network_behind_stored_programs(program_folder, traced):
    content, style = photo(64, 64, seed=5), traced.embed(texture(64, seed=6))
    st = Stylizer.load(MODEL, style_size=64, programs=True, tile=32)
    np.testing.assert_allclose(st.stylize(content, style, tile=True), traced.stylize(content, style), atol=1e-4)


def test_programs_off_or_for_a_workdir_means_tracing(monkeypatch, tmp_path):
    monkeypatch.setenv(programs.PROGRAMS_ENV, "off")
    assert programs.folder() is None
    assert programs.open_store(MODEL, {}, "fp32") is None
    monkeypatch.setenv(programs.PROGRAMS_ENV, str(tmp_path))
    assert programs.open_store(str(tmp_path / "a-training-workdir"), {}, "fp32") is None
    assert programs.open_store(MODEL, {}, "fp32") is not None


def test_lapack_setup_is_skipped_only_for_programs_without_lapack():
    import jax
    import jax.numpy as jnp
    from jax._src.export import _export

    spec = jax.ShapeDtypeStruct((3, 3), jnp.float32)
    original = _export._ensure_backends_initialized
    with programs._without_lapack_setup(jax.export.export(jax.jit(jnp.linalg.inv))(spec)):
        assert _export._ensure_backends_initialized is original
    with programs._without_lapack_setup(jax.export.export(jax.jit(jnp.sin))(spec)):
        assert _export._ensure_backends_initialized is not original
    assert _export._ensure_backends_initialized is original


def test_bf16_programs_keep_their_precision(program_folder):
    content, style = photo(32, 32, seed=7), texture(64, seed=8)
    want = Stylizer.load(MODEL, style_size=64, precision="bf16").stylize(content, style)
    for _ in range(2):  # exported, then read back
        st = Stylizer.load(MODEL, style_size=64, precision="bf16", programs=True)
        np.testing.assert_allclose(st.stylize(content, style), want, atol=1e-5)
    assert st._model is None


def test_a_painting_used_again_takes_its_embedding_from_the_store(program_folder, traced):
    style, other = texture(64, seed=4), texture(64, seed=5)
    want = traced.embed(style)
    first = Stylizer.load(MODEL, style_size=64, programs=True)
    np.testing.assert_allclose(first.embed(style), want, atol=1e-5)
    kept = list((program_folder / "results").glob("predictor-*.npy"))
    assert len(kept) == 1
    np.testing.assert_array_equal(np.load(kept[0]), first.embed(style)[None])

    later = Stylizer.load(MODEL, style_size=64, programs=True)
    (program_folder / next(program_folder.glob("predictor-*.npz")).name).unlink()  # only the kept result is left
    np.testing.assert_array_equal(later.embed(style), first.embed(style))
    assert not list(program_folder.glob("predictor-*.npz"))  # the predictor was not run
    np.testing.assert_allclose(later.embed(other), traced.embed(other), atol=1e-5)  # another painting: computed
    assert len(list((program_folder / "results").glob("predictor-*.npy"))) == 2

    kept[0].write_bytes(b"not an array")  # a damaged result is computed again, and replaced
    np.testing.assert_allclose(Stylizer.load(MODEL, style_size=64, programs=True).embed(style), want, atol=1e-5)
    assert np.load(kept[0]).shape == (1, want.shape[0])
