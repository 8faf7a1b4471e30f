"""Memory stays bounded for any style image, and a writer killed with SIGKILL leaves nothing that later runs keep.

Both run real processes: the style strip under an address-space limit (resource.setrlimit), the writer killed
with a real SIGKILL while its temporary file exists.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from arbstyle import images
from arbstyle.inference.stylize import style_input

REPO = Path(__file__).resolve().parent.parent


def _strip(path: Path, width: int = 100_000, height: int = 8) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def test_a_100000_x_8_style_embeds_in_bounded_memory(tmp_path):
    """Resizing the strip's short side to 256 before cropping made a 819 MP intermediate (19.5 GB peak);
    cropping first makes it an 8 x 8 square. The child gets 3 GiB of address space beyond what it has mapped
    after its imports."""
    strip = _strip(tmp_path / "strip.png")
    code = textwrap.dedent(f"""
        import resource
        import numpy as np
        from arbstyle import images
        from arbstyle.inference.stylize import style_input
        with open("/proc/self/status") as f:
            mapped = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize:"))
        limit = mapped + 3 * 2**30
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        arr = style_input({str(strip)!r}, 256)
        assert arr.shape == (256, 256, 3) and np.isfinite(arr).all(), arr.shape
        print("ok", arr.shape)
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-2000:]


def test_style_is_cropped_before_it_is_resized(tmp_path):
    strip = images.load_image(_strip(tmp_path / "s.png", 400, 40))
    got = style_input(tmp_path / "s.png", 64)
    want = images.resize_to(strip[:, 180:220], (64, 64))  # the centred 40 x 40 square, then resized
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(style_input(strip, 64), want, atol=1e-6)  # arrays take the same path


def test_image_size_applies_exif_rotation(tmp_path):
    img = Image.fromarray(np.zeros((20, 50, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90
    img.save(tmp_path / "r.jpg", exif=exif)
    assert images.image_size(tmp_path / "r.jpg") == (20, 50)
    assert load_shape(tmp_path / "r.jpg") == (50, 20)


def load_shape(path):
    return images.load_image(path).shape[:2]


WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from arbstyle.images import save_image
    noise = np.random.default_rng(0).random((1500, 1500, 3), np.float32)
    while True:
        save_image(noise, sys.argv[1])
""")


def _temps(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(".out.png.") and p.name.endswith(".tmp")]


def test_a_temp_file_stranded_by_sigkill_is_removed_by_the_next_write(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    target = tmp_path / "out.png"
    stray = []
    for _ in range(5):  # the kill must land while a temp file exists; almost always the first try
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], env=env)
        deadline = time.time() + 120
        while not _temps(tmp_path) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        stray = _temps(tmp_path)
        if stray:
            break
    assert stray, "the writer was never caught with its temp file open"
    others = [tmp_path / ".other.png.abcdefgh.tmp", tmp_path / ".out.png.notours.tmp", tmp_path / "out.png.tmp"]
    for path in others:
        path.write_bytes(b"not ours")
    code = "import sys, numpy as np; from arbstyle.images import save_image; " \
           "save_image(np.zeros((8, 8, 3), np.float32), sys.argv[1])"
    subprocess.run([sys.executable, "-c", code, str(target)], env=env, check=True, timeout=120)
    assert not any(path.exists() for path in stray)
    assert images.load_image(target).shape == (8, 8, 3)
    assert all(path.exists() for path in others)  # other names and patterns are left alone


def test_a_newer_temp_file_is_left_to_its_writer(tmp_path):
    target = tmp_path / "out.png"
    fd, name = images.temp_file(target)  # a concurrent writer, started after this process
    os.close(fd)
    assert images.remove_stale_temps(target) == 0
    assert Path(name).exists()
    os.utime(name, (0, 0))  # as if written by a run that ended long ago
    assert images.remove_stale_temps(target) == 1
    assert not Path(name).exists()


@pytest.mark.parametrize("orientation", [1, 8])
def test_pixel_limit_applies_after_rotation(tmp_path, orientation):
    img = Image.fromarray(np.zeros((10, 30, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(tmp_path / "r.jpg", exif=exif)
    with pytest.raises(images.ImageError, match="over the limit"):
        images.load_image(tmp_path / "r.jpg", max_pixels=299)
    with pytest.raises(images.ImageError, match="over the limit"):
        images.image_size(tmp_path / "r.jpg", max_pixels=299)
