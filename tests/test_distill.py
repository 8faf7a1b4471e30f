"""arbstyle.training.distill: the bottleneck as a ridge regression of a teacher's embeddings on pooled trunk
features."""
import numpy as np

from arbstyle.training import distill


def test_fit_recovers_a_linear_map_and_reports_held_out_r2():
    rng = np.random.default_rng(0)
    x = rng.normal(0.05, 0.05, size=(600, 40))  # small, offset features like pooled Mixed_6e activations
    w, b = rng.normal(size=(40, 7)), rng.normal(size=7)
    y = x @ w + b + rng.normal(scale=0.01, size=(600, 7))
    w_fit, b_fit, report = distill.fit(x, y, holdout=0.1)
    np.testing.assert_allclose(x @ w_fit + b_fit, x @ w + b, atol=0.05)
    assert report["held_out"] == 60 and report["styles"] == 600
    assert report["held_out_r2"] > 0.99 and report["ridge"] == min(distill.RIDGE_GRID)


def test_noise_alone_is_not_explained():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(300, 20)), rng.normal(size=(300, 5))
    _, _, report = distill.fit(x, y)
    assert report["held_out_r2"] < 0.1
