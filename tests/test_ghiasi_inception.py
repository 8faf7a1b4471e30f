"""The own model `ghiasi-inception` and experiments/ghiasi_inception.py: a frozen ImageNet Inception-v3 trunk and a
frozen Magenta decoder, with a distilled and trained bottleneck between them (training tests need ../shared)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flax import nnx

from arbstyle.cli import main
from arbstyle.training import checkpoints
from arbstyle.training.train import read_metrics
from arbstyle.weights import pretrained

CONFIG = Path(__file__).resolve().parent.parent / "experiments" / "ghiasi_inception.py"


def _flat(module) -> dict[str, np.ndarray]:
    return {"/".join(map(str, p)): np.asarray(v.get_value()) for p, v in nnx.to_flat_state(nnx.state(module))}


@pytest.mark.shared
def test_full_width_route_trains_only_the_bottleneck(shared, tmp_path, capsys):
    workdir = tmp_path / "run"
    val = shared / "data" / "val"
    args = ["train", "--config", f"{CONFIG}:full", "--workdir", str(workdir), "--config.train.progress=false",
            f"--config.data.content={val / 'content'}", f"--config.data.style={val / 'styles'}",
            "--config.data.eval_content=", "--config.data.eval_style=",
            "--config.data.content_size=32", "--config.data.style_size=96", "--config.loss.style_size=32",
            "--config.data.style_resize_extra=(2, 16)",
            "--config.train.batch_size=2", "--config.train.steps=2", "--config.train.log_every=1",
            "--config.train.checkpoint_every=1", "--config.train.num_samples=2", "--config.train.sample_every=1",
            "--config.optimizer.warmup_steps=0"]
    assert main(args) == 0
    assert "done: step 2 (started at 0)" in capsys.readouterr().out

    model = checkpoints.restore_model(workdir)
    first = nnx.eval_shape(lambda: model)  # the same structure, filled from step 1 below
    checkpoints.restore_model_state(workdir, first, step=1)
    trained, initial = _flat(model), _flat(first)

    # frozen: the ImageNet trunk as published, and the decoder exactly as read from Magenta's file
    trunk = pretrained.load_arrays("inception-v3")
    for key, value in trained.items():
        if key.startswith("predictor/trunk/"):
            np.testing.assert_array_equal(value, trunk[key.removeprefix("predictor/trunk/")], err_msg=key)
    from arbstyle.weights import magenta_tflite

    decoder = nnx.eval_shape(lambda: model)
    magenta_tflite.load_transformer(decoder.transformer, decoder.heads,
                                    shared / "reference" / magenta_tflite.INCEPTION_TRANSFER)
    for part in ("transformer", "heads"):
        for key, value in _flat(getattr(decoder, part)).items():
            np.testing.assert_array_equal(trained[f"{part}/{key}"], value, err_msg=f"{part}/{key}")
    # trained: the bottleneck moved between step 1 and step 2, and nothing else did
    moved = sorted(k for k in trained if not np.array_equal(trained[k], initial[k]))
    assert moved == ["predictor/bottleneck/bias", "predictor/bottleneck/kernel"]

    logged = read_metrics(workdir)
    assert [r["step"] for r in logged if "loss/total" in r] == [1, 2]
    held_out = [r for r in logged if "val/loss/total" in r]
    assert [r["step"] for r in held_out] == [1, 2] and all(np.isfinite(r["val/loss/style"]) for r in held_out)


def test_shipped_weights_are_pinned_and_a_tampered_copy_is_refused(tmp_path, monkeypatch):
    import arbstyle

    item = pretrained.artifact("ghiasi-inception")
    [(relative, pin)] = item.source.files.items()
    shipped = Path(arbstyle.__file__).parent / relative
    assert pretrained.sha256_file(shipped) == pin and shipped.stat().st_size < 10e6
    # the same pins, read from a package whose copy of the file differs by one bit
    package = tmp_path / "altered_arbstyle"
    (package / relative).parent.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    data = bytearray(shipped.read_bytes())
    data[len(data) // 2] ^= 1
    (package / relative).write_bytes(bytes(data))
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "work").mkdir()
    with pytest.raises(pretrained.WeightsError, match="is not the pinned") as err:
        pretrained.PackageFiles("altered_arbstyle", item.source.files).obtain(tmp_path / "work")
    assert "\n" not in str(err.value)


def test_ghiasi_inception_stylizes_a_small_photo_end_to_end(tmp_path, capsys):
    from skimage import data as samples

    from arbstyle import images

    photo, painting = tmp_path / "photo.png", tmp_path / "painting.png"
    images.save_image(images.resize_to(images.to_float32(samples.astronaut()), (72, 72)), photo)
    images.save_image(images.to_float32(samples.coffee()), painting)
    out = tmp_path / "out.png"
    assert main(["stylize", str(photo), "-s", str(painting), "--model", "ghiasi-inception", "-o", str(out)]) == 0
    result, original = images.load_image(out), images.load_image(photo)
    assert result.shape == original.shape
    assert 0.02 < np.abs(result - original).mean() < 0.5 and result.std() > 0.03


@pytest.mark.shared
def test_default_route_distills_then_fine_tunes_the_bottleneck(shared, tmp_path, capsys):
    workdir = tmp_path / "run"
    val = shared / "data" / "val"
    args = ["train", "--config", str(CONFIG), "--workdir", str(workdir), "--config.train.progress=false",
            f"--config.data.content={val / 'content'}", f"--config.data.style={val / 'styles'}",
            "--config.data.eval_content=", "--config.data.eval_style=", "--config.init.distill.styles=32",
            "--config.data.content_size=32", "--config.data.style_size=96", "--config.loss.style_size=32",
            "--config.data.style_resize_extra=(2, 16)", "--config.train.batch_size=2", "--config.train.steps=1",
            "--config.train.log_every=1", "--config.train.num_samples=2"]
    assert main(args) == 0
    assert "done: step 1 (started at 0)" in capsys.readouterr().out
    assert checkpoints.available_steps(workdir) == [0, 1]
    [report] = [r for r in read_metrics(workdir) if "distill/held_out_r2" in r]
    assert report["step"] == 0 and report["distill/styles"] == 32 and np.isfinite(report["distill/held_out_r2"])
    distilled, tuned = (checkpoints.restore_model(workdir, step) for step in (0, 1))
    # the distilled bottleneck maps features to embeddings of the teacher's scale, and training moved only it
    teacher = pretrained.load_arrays("magenta-mobile")
    tuned_arrays, distilled_arrays = _flat(tuned), _flat(distilled)
    moved = sorted(k for k in tuned_arrays if not np.array_equal(tuned_arrays[k], distilled_arrays[k]))
    assert moved == ["predictor/bottleneck/bias", "predictor/bottleneck/kernel"]
    for key, value in distilled_arrays.items():
        if key.startswith(("transformer/", "heads/")):
            np.testing.assert_array_equal(value, teacher[key], err_msg=key)
