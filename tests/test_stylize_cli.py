"""`arbstyle stylize / embed / demo` end to end through the real CLI entry point, with a tiny random-init model.

`Stylizer.load` is pointed at the tiny model (the registry's real models are exercised by the registry's own
tests and by tests/test_stylize_real.py); everything else, image files included, is real.
"""
import numpy as np
import pytest
from PIL import Image

from arbstyle.cli import main
from arbstyle.images import load_image, save_image
from arbstyle.inference.stylize import DEFAULT_MODEL, Stylizer
from stylize_helpers import TEST_STYLE_SIZE, photo, texture, tiny_stylizer


_STYLIZERS = {}


@pytest.fixture(autouse=True)
def tiny_registry(monkeypatch):
    monkeypatch.setenv("ARBSTYLE_XLA_CACHE", "off")  # the persistent cache is process-global: keep tests apart
    loaded = []

    def load(name_or_path=DEFAULT_MODEL, **kwargs):
        kwargs["style_size"] = min(kwargs.get("style_size", TEST_STYLE_SIZE), TEST_STYLE_SIZE)
        assert kwargs.pop("activations") == "float"  # the tiny model is float; exact needs an imported model
        kwargs.pop("programs", None)  # stored programs are for pretrained names (tests/test_programs.py)
        loaded.append((name_or_path, kwargs))
        key = tuple(sorted(kwargs.items()))
        if key not in _STYLIZERS:  # reused across CLI calls so that tests do not recompile per call
            _STYLIZERS[key] = tiny_stylizer(**kwargs)
        return _STYLIZERS[key]

    monkeypatch.setattr(Stylizer, "load", staticmethod(load))
    return loaded


@pytest.fixture()
def files(tmp_path):
    contents, styles = tmp_path / "photos", tmp_path / "paintings"
    for i, (h, w) in enumerate([(40, 56), (48, 48)]):
        save_image(photo(h, w, seed=i), contents / f"photo{i}.jpg")
    for i in range(2):
        save_image(texture(64, seed=10 + i), styles / f"art{i}.png")
    (contents / "notes.txt").write_text("not an image, and not picked up from a folder")
    return contents, styles


def _run(*argv):
    return main([str(a) for a in argv])


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_cross_product_from_folders(files, tmp_path, capsys):
    contents, styles = files
    out = tmp_path / "out"
    assert _run("stylize", contents, "--style", styles, "-o", out) == 0
    assert _names(out) == ["photo0__art0.png", "photo0__art1.png", "photo1__art0.png", "photo1__art1.png"]
    assert load_image(out / "photo0__art1.png").shape == (40, 56, 3)  # the content's own size by default
    assert "wrote 4 image(s)" in capsys.readouterr().out


def test_pairs_and_globs(files, tmp_path):
    contents, styles = files
    out = tmp_path / "out"
    assert _run("stylize", contents / "photo*.jpg", "--style", styles / "art1.png", styles / "art0.png",
                "--pairs", "-o", out) == 0
    assert _names(out) == ["photo0__art1.png", "photo1__art0.png"]
    assert _run("stylize", contents, "--style", styles / "art0.png", "--pairs", "-o", out) == 2  # 2 vs 1


def test_single_file_output_and_formats(files, tmp_path):
    contents, styles = files
    target = tmp_path / "one" / "result.jpg"
    assert _run("stylize", contents / "photo1.jpg", "-s", styles / "art0.png", "-o", target, "--quality", "80") == 0
    assert Image.open(target).format == "JPEG" and _names(target.parent) == ["result.jpg"]
    folder = tmp_path / "webp"
    assert _run("stylize", contents / "photo1.jpg", "-s", styles, "-o", folder, "--format", "webp") == 0
    assert _names(folder) == ["photo1__art0.webp", "photo1__art1.webp"]
    # several outputs cannot go to one file name
    assert _run("stylize", contents, "-s", styles / "art0.png", "-o", tmp_path / "x.png") == 2


def test_skip_existing_unless_overwrite(files, tmp_path, capsys):
    contents, styles = files
    out = tmp_path / "out"
    args = ("stylize", contents / "photo0.jpg", "-s", styles / "art0.png", "-o", out)
    assert _run(*args) == 0
    target = out / "photo0__art0.png"
    target.write_bytes(b"keep me")
    capsys.readouterr()
    assert _run(*args) == 0
    assert target.read_bytes() == b"keep me" and "nothing to do" in capsys.readouterr().out
    assert _run(*args, "--overwrite") == 0
    assert load_image(target).shape == (40, 56, 3)


def test_controls_change_the_result(files, tmp_path):
    contents, styles = files
    base = ("stylize", contents / "photo0.jpg", "-s", styles / "art0.png")

    def result(name, *extra):
        assert _run(*base, "-o", tmp_path / f"{name}.png", *extra) == 0
        return load_image(tmp_path / f"{name}.png")

    plain = result("plain")
    weak = result("weak", "--strength", "0.2")
    assert np.abs(plain - weak).mean() > 0.01
    kept = result("kept", "--preserve-color")
    content = load_image(contents / "photo0.jpg")
    chroma = lambda a: a - (a @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]  # noqa: E731
    assert np.abs(chroma(kept) - chroma(content)).mean() < np.abs(chroma(plain) - chroma(content)).mean() / 2
    assert result("sized", "--content-size", "20").shape == (20, 28, 3)
    assert result("capped", "--max-size", "28").shape == (20, 28, 3)
    softer = result("work", "--work-size", "28")
    assert softer.shape == (40, 56, 3) and np.abs(softer - plain).mean() > 0.005
    bf16 = result("bf16", "--precision", "bf16")
    assert 0 < np.abs(bf16 - plain).mean() < 0.03
    tiled = result("tiled", "--tiling", "on", "--tile-size", "16", "--no-bucket")
    exact = result("exact", "--no-bucket")
    assert np.abs(tiled - exact).mean() < 2e-3  # both 8-bit PNGs of results equal within rounding


def test_style_weights_mix(files, tmp_path):
    contents, styles = files
    out = tmp_path / "mix"
    args = ("stylize", contents / "photo0.jpg", "-s", styles / "art0.png", styles / "art1.png", "-o", out)
    assert _run(*args, "--style-weights", "1,0") == 0
    assert _names(out) == ["photo0__art0+art1.png"]
    only_first = load_image(out / "photo0__art0+art1.png")
    assert _run("stylize", contents / "photo0.jpg", "-s", styles / "art0.png", "-o", tmp_path / "a0.png") == 0
    np.testing.assert_allclose(only_first, load_image(tmp_path / "a0.png"), atol=1 / 255)
    assert _run(*args, "--style-weights", "0.5", "--overwrite") == 2  # one weight for two styles
    assert _run(*args, "--style-weights", "a,b", "--overwrite") == 2


def test_embed_then_style_embedding(files, tmp_path, capsys):
    contents, styles = files
    npz = tmp_path / "emb" / "styles.npz"
    assert _run("embed", styles, "-o", npz) == 0
    with np.load(npz, allow_pickle=False) as data:
        assert list(data["names"]) == ["art0", "art1"]
        assert data["embeddings"].shape == (2, 100) and data["embeddings"].dtype == np.float32
    from_file, from_image = tmp_path / "f.png", tmp_path / "i.png"
    assert _run("stylize", contents / "photo0.jpg", "--style-embedding", f"{npz}:art1", "-o", from_file) == 0
    assert _run("stylize", contents / "photo0.jpg", "-s", styles / "art1.png", "-o", from_image) == 0
    np.testing.assert_allclose(load_image(from_file), load_image(from_image), atol=1 / 255)
    all_styles = tmp_path / "all"
    assert _run("stylize", contents / "photo1.jpg", "--style-embedding", npz, "-o", all_styles) == 0
    assert _names(all_styles) == ["photo1__art0.png", "photo1__art1.png"]
    capsys.readouterr()
    assert _run("stylize", contents / "photo0.jpg", "--style-embedding", f"{npz}:art0", "-o", tmp_path / "w.png",
                "--model", "another-model") == 0
    assert f"embeddings of model '{DEFAULT_MODEL}', not 'another-model'" in capsys.readouterr().err
    assert _run("stylize", contents / "photo0.jpg", "--style-embedding", f"{npz}:nope", "-o", tmp_path / "n") == 2
    assert "nope" in capsys.readouterr().err
    assert _run("embed", styles, "-o", tmp_path / "emb.txt") == 2


@pytest.mark.parametrize("bad", ["missing", "text", "truncated", "tiny"])
def test_bad_content_stops_before_any_output(files, tmp_path, capsys, bad):
    contents, styles = files
    path = contents / f"zz_{bad}.png"
    if bad == "text":
        path.write_text("hello")
    elif bad == "truncated":
        save_image(photo(64, 64), path)
        path.write_bytes(path.read_bytes()[:200])
    elif bad == "tiny":
        Image.new("RGB", (1, 1)).save(path)
    out = tmp_path / "out"
    capsys.readouterr()
    status = _run("stylize", contents / "photo0.jpg", path, "-s", styles, "-o", out)
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and not out.exists()  # nothing written, not even the good content's results
    assert len(err) == 1 and str(path) in err[0] and err[0].startswith("arbstyle stylize: error: ")


def test_keep_going_skips_bad_contents(files, tmp_path, capsys):
    contents, styles = files
    bad = contents / "broken.png"
    bad.write_text("hello")
    out = tmp_path / "out"
    assert _run("stylize", contents, bad, "-s", styles / "art0.png", "-o", out, "--keep-going") == 2
    assert _names(out) == ["photo0__art0.png", "photo1__art0.png"]
    assert "broken.png" in capsys.readouterr().err


def test_bad_style_and_options(files, tmp_path, capsys):
    contents, styles = files
    out = tmp_path / "out"
    (styles / "zz.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert _run("stylize", contents, "-s", styles, "-o", out) == 2
    assert "zz.png" in capsys.readouterr().err and not out.exists()
    (styles / "zz.png").unlink()
    assert _run("stylize", contents, "-s", styles, "-o", out, "--strength", "2") == 2
    assert _run("stylize", contents, "-o", out) == 2  # no styles at all
    assert _run("stylize", contents / "nope*.jpg", "-s", styles, "-o", out) == 2
    assert _run("stylize", contents / "photo0.jpg", "-s", styles / "art0.png", "-o", tmp_path / "o.bmpx") == 2
    assert not out.exists()


def test_interrupt_leaves_no_partial_file(files, tmp_path, monkeypatch):
    contents, styles = files
    out = tmp_path / "out"
    calls = []

    def interrupt(self, fp, *args, **kwargs):
        calls.append(1)
        fp.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", interrupt)
    assert _run("stylize", contents / "photo0.jpg", "-s", styles, "-o", out) == 130
    assert calls and list(out.iterdir()) == []


def test_demo_contact_sheet(tmp_path):
    out = tmp_path / "demo.png"
    assert _run("demo", "-o", out, "--size", "32", "--contents", "astronaut", "chelsea",
                "--styles", "brick", "immunohistochemistry") == 0
    sheet = load_image(out)
    gap = 4
    assert sheet.shape == (3 * (32 + gap) + gap, 3 * (32 + gap) + gap, 3)
    cell = sheet[gap + 36:gap + 36 + 32, gap + 36:gap + 36 + 32]  # astronaut x brick
    assert cell.std() > 0.01
    assert _run("demo", "-o", tmp_path / "x.png", "--contents", "no_such_sample") == 2


# ---------------------------------------------------------------- arguments checked before any work


@pytest.mark.parametrize("extra, flag", [
    (["--content-size", "60000"], "--content-size 60000"),
    (["--content-size", "4"], "--content-size"),
    (["--max-size", "3"], "--max-size"),
    (["--style-size", "60000"], "--style-size"),
    (["--tile-size", "2"], "--tile-size"),
    (["--quality", "0"], "--quality"),
    (["--strength", "nan"], "--strength"),
])
def test_every_number_is_checked_before_the_model_loads(files, tmp_path, capsys, tiny_registry, extra, flag):
    contents, styles = files
    out = tmp_path / "out"
    assert _run("stylize", contents / "photo0.jpg", "-s", styles / "art0.png", "-o", out, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err, err
    assert tiny_registry == [] and not out.exists()


def test_unwritable_output_is_refused_before_the_model_loads(files, tmp_path, capsys, tiny_registry):
    contents, styles = files
    blocker = tmp_path / "a_file"
    blocker.write_text("a file where the output folder should be")
    assert _run("stylize", contents / "photo0.jpg", "-s", styles / "art0.png", "-o", blocker / "out.png") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a folder" in err, err
    assert _run("embed", styles, "-o", blocker / "styles.npz") == 2
    assert "not a folder" in capsys.readouterr().err
    assert tiny_registry == []


def test_style_option_taking_the_content_gets_a_helpful_line(files, tmp_path, capsys, tiny_registry):
    contents, styles = files
    out = tmp_path / "out.png"
    assert _run("stylize", "-s", styles / "art0.png", contents / "photo0.jpg", "-o", out) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "-s/--style took all of" in err, err
    assert f"arbstyle stylize {contents / 'photo0.jpg'} -s {styles / 'art0.png'}" in err  # the fixed command
    assert tiny_registry == [] and not out.exists()
    assert _run("stylize", contents / "photo0.jpg", "-s", styles / "art0.png", "-o", out) == 0  # as suggested
    assert out.is_file()


def test_embed_offers_only_the_flags_it_uses(capsys):
    with pytest.raises(SystemExit):
        _run("embed", "--help")
    text = capsys.readouterr().out
    assert "--precision" not in text and "--activations" in text and "--style-size" in text


def test_stale_temp_files_beside_skipped_outputs_are_removed(files, tmp_path):
    import os

    contents, styles = files
    out = tmp_path / "out"
    assert _run("stylize", contents, "-s", styles / "art0.png", "-o", out) == 0
    stray = out / ".photo0__art0.png.k3j9x2ab.tmp"  # what a SIGKILL during an --overwrite rerun leaves
    stray.write_bytes(b"half a picture")
    os.utime(stray, (0, 0))  # older than this process, like a file of an earlier run
    assert _run("stylize", contents, "-s", styles / "art0.png", "-o", out) == 0  # every output skipped
    assert not stray.exists()
