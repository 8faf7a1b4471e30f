"""`arbstyle learn` with a real model (`magenta-mobile`, the fastest on a CPU) on scikit-image's bundled photos and
textures, at tiny sizes and a handful of steps; no mocks, no shared data."""
import numpy as np
import pytest

from arbstyle import images
from arbstyle.cli import main
from arbstyle.images import load_image, resize_long, save_image, to_float32
from arbstyle.inference.stylize import Stylizer, load_styles, save_styles

SIZE = 48
MOBILE = "magenta-mobile"


def _sample(name, side=96):
    import skimage.data

    return resize_long(to_float32(getattr(skimage.data, name)()), side)


@pytest.fixture(autouse=True)
def no_xla_cache(monkeypatch):
    monkeypatch.setenv("ARBSTYLE_XLA_CACHE", "off")  # the persistent cache is process-global: keep tests apart


@pytest.fixture(scope="module")
def model():
    from arbstyle.weights import registry

    return registry.load_model(MOBILE)


@pytest.fixture()
def files(tmp_path):
    photos, paintings = tmp_path / "photos", tmp_path / "paintings"
    for name in ("astronaut", "coffee"):
        save_image(_sample(name), photos / f"{name}.png")
    for name in ("brick", "immunohistochemistry"):
        save_image(_sample(name), paintings / f"{name}.png")
    return photos, paintings


@pytest.mark.parametrize("params", ["embedding", "cin"])
def test_a_few_steps_lower_the_style_loss_on_a_held_out_photo(model, params):
    from arbstyle.inference.learn import StyleLearner

    learner = StyleLearner(model, [_sample("astronaut"), _sample("coffee")], params=params, size=SIZE)
    painting = _sample("immunohistochemistry")
    result = learner.learn([painting], steps=6)
    assert len(result.history["style"]) == 7 and not result.interrupted
    assert result.best_loss["total"] < result.start_loss["total"]  # on the fitting photos
    held_out = [_sample("chelsea")]
    before = learner.losses(result.start, [painting], held_out)
    after = learner.losses(result.style, [painting], held_out)
    assert after["style"] < 0.97 * before["style"], (before, after)
    if params == "embedding":
        assert result.style.shape == (100,)
    else:
        assert set(result.style) == {name for name, _ in model.transformer.cin_layers}


def test_cin_strength_and_mixing_match_the_embedding_path(model):
    """The CIN heads are linear, so the CIN parameters of an embedding must behave exactly like the embedding
    under strength (interpolation towards the content's own style) and mixing."""
    from arbstyle.inference.stylize import mix_cin

    st = Stylizer(model)
    photo = _sample("chelsea", 64)
    a, b = st.embed([_sample("brick"), _sample("immunohistochemistry")])
    cin = st.cin(np.stack([a, b]))
    a_cin = {k: (g[0], bb[0]) for k, (g, bb) in cin.items()}
    for strength in (1.0, 0.4):
        np.testing.assert_allclose(st.stylize(photo, a_cin, strength=strength), st.stylize(photo, a, strength=strength),
                                   atol=2e-4)
    np.testing.assert_allclose(st.stylize(photo, mix_cin(cin, [0.3, 0.7])),
                               st.stylize(photo, st.mix([a, b], [0.3, 0.7])), atol=2e-4)
    assert np.abs(st.stylize(photo, a_cin, strength=0.4) - st.stylize(photo, a_cin)).mean() > 0.01


@pytest.mark.parametrize("params", ["embedding", "cin"])
def test_learned_file_round_trips_through_stylize(files, tmp_path, capsys, params):
    photos, paintings = files
    out = tmp_path / "table" / "styles.npz"
    assert main(["learn", str(paintings), "-o", str(out), "--content", str(photos), "--size", str(SIZE),
                 "--steps", "2", "--params", params, "--quiet", "--model", MOBILE]) == 0
    styles, meta = load_styles(out)
    assert sorted(styles) == ["brick", "immunohistochemistry"] and meta == {"model": MOBILE, "kind": params}
    assert out.stat().st_mode & 0o777 == images.FILE_MODE  # a plain file's permissions, not the temporary's 0600
    photo = tmp_path / "chelsea.png"
    save_image(_sample("chelsea", 64), photo)
    result = tmp_path / "out.png"
    assert main(["stylize", str(photo), "--model", MOBILE, "--style-embedding", f"{out}:brick", "-o", str(result),
                 "--strength", "0.8"]) == 0
    expected = Stylizer.load(MOBILE).stylize(load_image(photo), styles["brick"], strength=0.8)
    assert np.abs(load_image(result) - expected).max() <= 1.5 / 255  # 8-bit rounding of the saved file
    if params == "embedding":  # the rest is the same code for both kinds once read; CIN is the new path
        return
    # the whole file: every learned style, and mixed with a painting given as an image
    assert main(["stylize", str(photo), "--model", MOBILE, "--style-embedding", str(out),
                 "-o", str(tmp_path / "all")]) == 0
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == ["chelsea__brick.png",
                                                                   "chelsea__immunohistochemistry.png"]
    assert main(["stylize", str(photo), "--model", MOBILE, "--style-embedding", f"{out}:brick",
                 "-s", str(paintings / "brick.png"), "--style-weights", "0.5,0.5",
                 "-o", str(tmp_path / "mix.png")]) == 0
    assert (tmp_path / "mix.png").is_file()


def test_mix_fits_one_style_to_all_paintings(files, tmp_path):
    photos, paintings = files
    out = tmp_path / "mix.npz"
    assert main(["learn", str(paintings / "brick.png"), str(paintings / "immunohistochemistry.png"), "--mix",
                 "-o", str(out), "--content", str(photos / "coffee.png"), "--size", str(SIZE), "--steps", "1",
                 "--quiet", "--model", MOBILE]) == 0
    styles, _ = load_styles(out)
    assert list(styles) == ["brick+immunohistochemistry"]


@pytest.mark.parametrize("case", ["not_an_image", "unwritable", "zero_steps"])
def test_bad_input_is_one_line_and_no_file(files, tmp_path, capsys, case):
    photos, paintings = files
    out = tmp_path / "styles.npz"
    painting = paintings / "brick.png"
    extra = []
    if case == "not_an_image":
        painting = tmp_path / "notes.png"
        painting.write_text("not an image")
    elif case == "unwritable":
        (tmp_path / "a_file").write_text("x")
        out = tmp_path / "a_file" / "styles.npz"  # a file where the folder should be
    else:
        extra = ["--steps", "0"]
    status = main(["learn", str(painting), "-o", str(out), "--content", str(photos), "--size", str(SIZE), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert {"not_an_image": "notes.png", "unwritable": "styles.npz", "zero_steps": "--steps"}[case] in err[0]
    assert not out.exists() and not list(tmp_path.glob("**/*.npz")) and not list(tmp_path.glob("**/.*.tmp"))


def test_styles_file_refuses_mixed_kinds_and_bad_arrays(tmp_path):
    emb = np.zeros(100, np.float32)
    cin = {"expand/conv3": (np.ones(3, np.float32), np.zeros(3, np.float32))}
    with pytest.raises(ValueError, match="either"):
        save_styles(tmp_path / "x.npz", ["a", "b"], [emb, cin], model="m")
    np.savez(tmp_path / "bad.npz", names=np.asarray(["a"]), kind=np.asarray("cin"), layers=np.asarray(["x"]),
             gamma_0=np.full((1, 3), np.nan, np.float32), beta_0=np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="bad.npz"):
        load_styles(tmp_path / "bad.npz")


def test_any_arbitrary_model_learns():
    """Nothing is specific to magenta-mobile: an Inception-trunk model built by build_model (random init) works."""
    from arbstyle.inference.learn import StyleLearner
    from stylize_helpers import tiny_model

    learner = StyleLearner(tiny_model(), [_sample("coffee")], params="cin", size=32)
    learner.stylizer.style_size = 80  # the tiny Inception stem needs at least this much
    result = learner.learn([_sample("brick")], steps=2)
    assert len(result.history["total"]) == 3 and np.isfinite(result.history["total"]).all()
    assert result.best_loss["total"] <= result.start_loss["total"]
