"""Gatys optimisation: end to end through the CLI on small real images, and bad inputs."""
import numpy as np
import pytest
import skimage.data
from PIL import Image

from arbstyle import losses as L
from arbstyle.cli import main
from arbstyle.images import load_image
from arbstyle.nets.vgg import load_vgg16
from arbstyle.optimize import _RGB2YCC, initial_image, optimize, transfer_luminance


def _save(arr, path, mode=None, size=64):
    img = Image.fromarray(arr).convert("RGB").resize((size, size), Image.BILINEAR)
    if mode:
        img = img.convert(mode)
    img.save(path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    content = _save(skimage.data.astronaut(), d / "content.jpg", mode="CMYK")  # CMYK JPEG: converted on load
    style = _save(skimage.data.coffee(), d / "style.png", mode="RGBA")  # RGBA PNG: composited on white
    return content, style


def _style_loss(img, style, cfg):
    vgg = load_vgg16()
    feats = L.content_targets(vgg, img, cfg)
    grams = L.style_targets(vgg, [style], cfg)
    return L.perceptual_loss(vgg, img, feats, grams, cfg)[1]["style"]


def test_cli_optimize_end_to_end_lowers_style_loss(images, tmp_path, capsys):
    content, style = images
    out = tmp_path / "result.png"
    rc = main(["optimize", "--content", str(content), "--style", str(style), "--size", "64", "--steps", "6",
               "--optimizer", "lbfgs", "-o", str(out)])
    assert rc == 0
    assert "wrote" in capsys.readouterr().out
    result = load_image(out)
    assert result.shape == (64, 64, 3)
    c, s = load_image(content), load_image(style)
    cfg = L.LossConfig()
    before, after = float(_style_loss(c, s, cfg)), float(_style_loss(result, s, cfg))
    assert after < 0.7 * before, (before, after)  # measured from the saved file, independently of the run
    assert not np.allclose(result, c, atol=0.02)


def test_adam_blend_of_two_styles_with_preserved_colour(images):
    content, style = (load_image(p) for p in images)
    second = np.asarray(Image.fromarray(skimage.data.chelsea()).resize((40, 32)), np.float32) / 255
    seen = []
    image, history = optimize(content, [style, second], [0.7, 0.3], size=48, steps=4, optimizer="adam",
                              init="mix", preserve_color=True, learning_rate=0.1,
                              callback=lambda k, v: seen.append(k))
    assert image.shape == (48, 48, 3) and 0 <= image.min() and image.max() <= 1
    assert seen == [1, 2, 3, 4] and history["step"] == [0, 1, 2, 3, 4]
    assert history["total"][-1] < history["total"][0]
    for key in ("content", "style", "tv", "style/relu4_3", "content/relu3_3"):
        assert len(history[key]) == 5
    # Colour preserved: chroma equals the (resized) content's wherever no channel clipped.
    from arbstyle.images import resize_long
    ref = resize_long(content, 48)
    cc_img, cc_ref = (image @ _RGB2YCC.T)[..., 1:], (ref @ _RGB2YCC.T)[..., 1:]
    inside = ((image > 0.01) & (image < 0.99)).all(-1)
    assert inside.mean() > 0.5
    np.testing.assert_allclose(cc_img[inside], cc_ref[inside], atol=2e-3)


def test_transfer_luminance_and_inits():
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0.2, 0.8, (2, 5, 5, 3)).astype(np.float32)
    mixed = transfer_luminance(a, b)
    ya, yb, ym = ((x @ _RGB2YCC.T) for x in (a, b, mixed))
    np.testing.assert_allclose(ym[..., 0], ya[..., 0], atol=1e-5)
    np.testing.assert_allclose(ym[..., 1:], yb[..., 1:], atol=1e-5)
    np.testing.assert_array_equal(initial_image(a, "content", 0), a)
    n1, n2 = initial_image(a, "noise", 3), initial_image(a, "noise", 3)
    np.testing.assert_array_equal(n1, n2)
    np.testing.assert_allclose(initial_image(a, "mix", 3), 0.5 * a + 0.5 * n1)
    with pytest.raises(ValueError):
        initial_image(a, "zeros", 0)


def _bad(tmp_path, kind):
    if kind == "missing":
        return tmp_path / "nope.jpg"
    if kind == "not_an_image":
        p = tmp_path / "notes.jpg"
        p.write_text("hello, not a JPEG")
        return p
    if kind == "truncated_jpeg":
        p = tmp_path / "cut.jpg"
        Image.fromarray(skimage.data.astronaut()).save(p, quality=90)
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
        return p
    if kind == "one_pixel":
        p = tmp_path / "dot.png"
        Image.new("RGB", (1, 1), (255, 0, 0)).save(p)
        return p
    if kind == "directory":
        return tmp_path
    if kind == "sliver":  # valid, but 3 px high after scaling to --size 32
        p = tmp_path / "sliver.png"
        Image.new("RGB", (300, 24), (0, 90, 200)).save(p)
        return p
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing", "not_an_image", "truncated_jpeg", "one_pixel", "directory", "sliver"])
@pytest.mark.parametrize("which", ["content", "style"])
def test_bad_input_images_fail_cleanly(images, tmp_path, capsys, kind, which):
    content, style = images
    bad = _bad(tmp_path, kind)
    out = tmp_path / "out" / "result.png"
    argv = ["optimize", "--content", str(bad if which == "content" else content),
            "--style", str(bad if which == "style" else style), "--size", "32", "--steps", "1", "-o", str(out)]
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc != 0
    assert not out.exists() and not out.parent.exists()
    assert len(err.splitlines()) == 1 and str(bad) in err, err


@pytest.mark.parametrize("extra, message", [
    (["--style-weights", "0.7,0.3"], "--style-weights"),
    (["--size", "4"], "--size"),
    (["--content-weight", "-1"], "--content-weight"),
    (["--lr", "-1", "--optimizer", "adam"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["--size", "60000"], "--size"),
    (["--tv-weight", "inf"], "--tv-weight"),
    (["--seed", "-3"], "--seed"),
    (["-o", "result.gif"], "extension"),
])
def test_bad_arguments_fail_before_any_work(images, tmp_path, capsys, monkeypatch, extra, message):
    content, style = images
    monkeypatch.chdir(tmp_path)
    argv = ["optimize", "--content", str(content), "--style", str(style), "--steps", "1", "-o", "result.png"]
    rc = main(argv + extra)
    err = capsys.readouterr().err.strip()
    assert rc != 0 and message in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_lbfgs_line_search_solves_an_ill_conditioned_quadratic():
    import jax
    import jax.numpy as jnp

    from arbstyle.optimize import _LBFGS

    scales = jnp.logspace(0, 3, 50).reshape(1, 5, 10, 1)  # condition number 1000
    target = jnp.linspace(-1, 1, 50).reshape(1, 5, 10, 1)

    @jax.jit
    def value_and_grad(z):
        def f(z):
            v = 0.5 * jnp.sum(scales * (z - target) ** 2)
            return v, {"total": v}
        return jax.value_and_grad(f, has_aux=True)(z)

    opt = _LBFGS(value_and_grad, ())
    start = float(opt.start(jnp.zeros_like(target))["total"])
    values = [start]
    for _ in range(40):
        terms = opt.step()
        if terms is None:
            break
        values.append(float(terms["total"]))
    assert all(b <= a for a, b in zip(values, values[1:]))  # Armijo: never increases
    assert len(values) == 41 and values[-1] < 1e-3 * start
    # Same iterates as optax.lbfgs with its in-graph zoom line search (both accept unit steps here).
    import optax
    tx, z = optax.lbfgs(), jnp.zeros_like(target)
    state = tx.init(z)
    f = lambda z: value_and_grad(z)[0][0]  # noqa: E731

    @jax.jit
    def step(z, state):
        v, g = optax.value_and_grad_from_state(f)(z, state=state)
        updates, state = tx.update(g, state, z, value=v, grad=g, value_fn=f)
        return optax.apply_updates(z, updates), state

    state = jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.result_type(x)), state)
    for _ in range(40):
        z, state = step(z, state)
    np.testing.assert_allclose(values[-1], float(f(z)), rtol=0.05)
    # Plain gradient descent with the best fixed step (1 / L) is far behind after as many steps.
    z = jnp.zeros_like(target)
    for _ in range(40):
        z = z - value_and_grad(z)[1] / 1000.0
    assert float(f(z)) > 10 * values[-1]
