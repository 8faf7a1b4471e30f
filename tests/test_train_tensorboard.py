"""What training logs to TensorBoard (arbstyle.training.tensorboard.RunLog over tensorboardX), read back with
TensorBoard's own reader: scalars, sample images, the config as text and as hparams; nothing from processes that must
not log."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from tensorboard.plugins.hparams import plugin_data_pb2

from arbstyle.training.tensorboard import RunLog, flatten
from tb_events import event_files, load

CONFIG = {"seed": 3, "train": {"steps": 12, "bf16": False, "learning_rate": 1e-5},
          "data": {"content": "shared_content", "style_resize_extra": (2, 12), "data_dir": None}}


def test_scalars_images_and_config_read_back_with_tensorboard(tmp_path):
    image = np.random.default_rng(0).random((12, 20, 3)).astype(np.float32)
    with RunLog(tmp_path) as log:
        log.config(CONFIG)
        log.scalars({"loss/total": 1.5, "loss/style": 0.25}, step=3)
        log.scalars({"loss/total": 1.25, "loss/style": 0.125}, step=2**40)
        log.image("samples", image, step=3)
    [path] = event_files(tmp_path)
    run = load(tmp_path)

    assert {e.step: e.value for e in run.Scalars("loss/total")} == {3: 1.5, 2**40: 1.25}
    assert [e.value for e in run.Scalars("loss/style")] == [0.25, 0.125]
    [sample] = run.Images("samples")
    assert (sample.step, sample.height, sample.width) == (3, 12, 20)
    decoded = np.asarray(Image.open(io.BytesIO(sample.encoded_image_string)))
    assert np.array_equal(decoded, (image * 255 + 0.5).astype(np.uint8))  # PNG: lossless, rounded to 8 bits

    [text] = run.Tensors("config/text_summary")
    assert json.loads(text.tensor_proto.string_val[0].decode().replace("\n    ", "\n")) == json.loads(
        json.dumps(CONFIG))
    start = plugin_data_pb2.HParamsPluginData.FromString(
        run.PluginTagToContent("hparams")["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["train.steps"].number_value == 12
    assert start.hparams["train.bf16"].bool_value is False
    assert start.hparams["data.content"].string_value == "shared_content"
    assert start.hparams["data.style_resize_extra"].string_value == "[2, 12]"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        run.PluginTagToContent("hparams")["_hparams_/experiment"]).experiment
    assert "loss/total" in [m.name.tag for m in experiment.metric_infos]
    assert path.name.startswith("events.out.tfevents.")


def test_every_write_reaches_the_file_before_close(tmp_path):
    # A run killed between two log calls must leave what it logged: nothing may wait in a buffer.
    log = RunLog(tmp_path)
    log.scalars({"loss/total": 2.0}, step=1)
    log.image("samples", np.zeros((8, 8, 3), np.uint8), step=1)
    run = load(tmp_path)
    assert [e.value for e in run.Scalars("loss/total")] == [2.0] and len(run.Images("samples")) == 1
    log.close()


def test_a_resumed_run_adds_a_file_and_tensorboard_keeps_the_newer_steps(tmp_path):
    with RunLog(tmp_path) as first:
        first.scalars({"loss/total": 5.0}, step=1)
        first.scalars({"loss/total": 4.0}, step=2)  # logged, then killed before its checkpoint at step 2
    with RunLog(tmp_path) as again:  # resumes from step 1
        again.scalars({"loss/total": 3.0}, step=2)
    assert len(event_files(tmp_path)) == 2
    assert {e.step: e.value for e in load(tmp_path).Scalars("loss/total")} == {1: 5.0, 2: 3.0}


def test_a_disabled_log_writes_nothing(tmp_path):
    log = RunLog(tmp_path / "logs", enabled=False)
    log.config(CONFIG)
    log.scalars({"a": 1.0}, step=1)
    log.image("b", np.zeros((8, 8, 3), np.uint8), step=1)
    log.close()
    assert not (tmp_path / "logs").exists()


def test_flatten_keeps_hparams_types():
    flat = flatten(CONFIG)
    assert flat == pytest.approx({"seed": 3, "train.steps": 12, "train.bf16": False, "train.learning_rate": 1e-5,
                                  "data.content": "shared_content", "data.style_resize_extra": "[2, 12]",
                                  "data.data_dir": "None"})
