"""Experiment configs load, describe buildable models and valid losses/data, and take typed command-line overrides."""
from __future__ import annotations

import re

from pathlib import Path

import ml_collections
import pytest

from arbstyle import data, losses
from arbstyle.model import model_config
from arbstyle.training.experiment import ConfigError, apply_override, base_config, load_config, split_override_args

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
NAMES = ["ghiasi2017", "shared_data", "finetune_magenta_mobile", "nstyle", "smoke"]


@pytest.mark.parametrize("name", NAMES)
def test_every_experiment_is_complete_and_consistent(name):
    config = load_config(EXPERIMENTS / f"{name}.py")
    assert isinstance(config, ml_collections.ConfigDict)
    assert config.keys() == base_config().keys()  # nothing dropped, nothing unknown
    model = model_config(config.model.to_dict())  # raises on unknown keys or predictors
    from arbstyle.training.train import loss_config, make_optimizer

    loss = loss_config(config.loss)
    assert loss.content and loss.style
    tx, schedule = make_optimizer(config.optimizer, config.train.steps)
    assert float(schedule(config.optimizer.warmup_steps)) == pytest.approx(config.optimizer.learning_rate)
    cfg = data.resolve_config(config.data)
    assert cfg.content and cfg.style
    assert config.train.batch_size > 0 and config.train.steps > 0
    assert config.train.checkpoint_every > 0 and config.train.keep_checkpoints >= 1
    if model["predictor"] == "table":
        assert not cfg.style_augment  # fixed paintings are seen as they are
    for frozen in config.train.freeze:
        assert frozen.split("/")[0] in ("predictor", "transformer", "heads", "table")
    with pytest.raises(AttributeError):
        config.not_a_field = 1  # locked: a typo cannot add a setting


def test_ghiasi2017_follows_the_paper_and_magenta():
    c = load_config(EXPERIMENTS / "ghiasi2017.py")
    assert (c.model.predictor, c.model.alpha, c.model.trunk.final_endpoint) == ("inception", 1.0, "Mixed_6e")
    assert c.init.trunk == "inception-v3" and not c.train.freeze  # ImageNet start, trained end to end
    assert c.data.content_size == c.data.style_size == 256 and c.train.batch_size == 8
    assert (c.optimizer.name, c.optimizer.learning_rate, c.optimizer.clip_norm) == ("adam", 1e-5, 0.0)
    assert c.data.content == "imagenet_content" and set(c.data.style.split(",")) == {"painter_by_numbers", "dtd"}
    assert c.data.style_augment and c.data.style_random_size
    default = losses.LossConfig()
    assert (c.loss.content_weight, c.loss.style_weight, c.loss.tv_weight) == (
        default.content_weight, default.style_weight, default.tv_weight)
    assert tuple(map(tuple, c.loss.style_layers)) == default.style_layers


def test_shared_data_is_ghiasi2017_on_the_shared_folders():
    paper, shared = load_config(EXPERIMENTS / "ghiasi2017.py"), load_config(EXPERIMENTS / "shared_data.py")
    assert shared.data.content == "shared_content" and shared.data.style == "shared_paintings,shared_textures"
    for group in ("model", "init", "loss", "optimizer"):
        assert shared[group].to_dict() == paper[group].to_dict(), group
    assert shared.train.batch_size == paper.train.batch_size


def test_nstyle_is_a_table_model_and_n_equals_one_is_johnson():
    c = load_config(EXPERIMENTS / "nstyle.py", ["data.style=shared_paintings:train[:1]"])
    assert c.model.predictor == "table" and c.model.num_styles == 0  # N comes from the data
    assert c.data.style == "shared_paintings:train[:1]"


def test_finetune_starts_from_magenta_mobile_with_the_trunk_frozen():
    c = load_config(EXPERIMENTS / "finetune_magenta_mobile.py")
    assert c.init.model == "magenta-mobile" and c.train.freeze == ("predictor/trunk",)


def test_overrides_are_typed_by_the_field_they_replace():
    c = load_config(EXPERIMENTS / "smoke.py", [
        "train.steps=7", "optimizer.learning_rate=3e-4", "train.progress=no", "data.style=/x,/y",
        "train.freeze=predictor/trunk,heads", "loss.style_layers=(('relu1_2', 2.0),)", "seed=1e3",
    ])
    assert c.train.steps == 7 and isinstance(c.train.steps, int)
    assert c.optimizer.learning_rate == 3e-4 and c.train.progress is False and c.seed == 1000
    assert c.data.style == "/x,/y"
    assert c.train.freeze == ("predictor/trunk", "heads")
    assert c.loss.style_layers == (("relu1_2", 2.0),)


@pytest.mark.parametrize("override, message", [
    ("train.stepz=3", "unknown config field 'stepz' in train"),
    ("nope.x=1", "unknown config field 'nope'"),
    ("train.steps=1.5", "expected an integer"),
    ("train.progress=maybe", "expected a boolean"),
    ("train.steps", "expected key=value"),
])
def test_bad_overrides_are_one_line_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(EXPERIMENTS / "smoke.py", [override])


def test_the_command_line_takes_both_override_spellings():
    from arbstyle.cli import build_parser

    argv = ["train", "--config", "experiments/smoke.py", "--workdir", "runs/w", "--config.train.steps=5",
            "--config.optimizer.learning_rate", "0.01"]
    built = build_parser(argv)
    parser = built[0] if isinstance(built, tuple) else built
    args = parser.parse_args(argv)
    assert args.config == "experiments/smoke.py" and args.workdir == "runs/w"
    assert args.config_overrides == ["train.steps=5", "optimizer.learning_rate=0.01"]
    assert split_override_args(["--config.a.b", "1", "--other"]) == (["a.b=1"], ["--other"])


def test_config_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.py")
    broken = tmp_path / "broken.py"
    broken.write_text("def get_config(:\n")
    with pytest.raises(ConfigError, match=f"{broken}: cannot load"):
        load_config(broken)
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(ConfigError, match="defines no get_config"):
        load_config(empty)
    wrong = tmp_path / "wrong.py"
    wrong.write_text("def get_config():\n    return {'a': 1}\n")
    with pytest.raises(ConfigError, match="not an ml_collections.ConfigDict"):
        load_config(wrong)


def test_apply_override_replaces_a_whole_group_from_a_dict():
    c = base_config()
    apply_override(c, "model.trunk", "{'final_endpoint': 'Mixed_5b'}")
    assert c.model.trunk.final_endpoint == "Mixed_5b"


@pytest.mark.parametrize("body, message", [
    ("c = ml_collections.ConfigDict({'model': {'alpha': 0.25}})", "has no section 'data'"),
    ("c = base_config(); del c['train']", "has no section 'train'"),
    ("c = base_config(); del c.train['steps']", "section 'train' lacks steps"),
    ("c = base_config(); c.trian = ml_collections.ConfigDict()", "unknown config section(s) trian"),
    ("c = base_config(); c.train.steps = -5", "train.steps = -5"),
    ("c = base_config(); c.optimizer.learning_rate = float('nan')", "optimizer.learning_rate = nan"),
])
def test_config_files_are_checked_against_the_known_sections(tmp_path, body, message):
    path = tmp_path / "exp.py"
    path.write_text("import ml_collections\nfrom arbstyle.training.experiment import base_config\n\n"
                    f"def get_config():\n    {body}\n    return c\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("override, message", [
    ("train.batch_size=0", "train.batch_size = 0"),
    ("optimizer.learning_rate=-1e-3", "must be > 0"),
    ("data.content_size=60000", "data.content_size = 60000"),
])
def test_out_of_range_overrides_name_the_field(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(EXPERIMENTS / "smoke.py", [override])


@pytest.mark.parametrize("variant", ["perceptual", "teacher", "motion"])
def test_stable_video_variants(variant):
    config = load_config(f"{EXPERIMENTS / 'stable_video.py'}:{variant}")
    assert config.keys() == base_config().keys()
    assert config.init.model and config.train.freeze[:2] == ("predictor", "heads")
    loss = config.loss
    perceptual = loss.content_weight + loss.style_weight + loss.tv_weight
    assert (perceptual > 0) == (variant == "perceptual")
    assert (loss.teacher_weight > 0) == (variant != "perceptual")  # without a perceptual loss, a teacher
    assert (loss.motion_weight > 0) == (variant == "motion")
    assert (loss.stability_weight > 0) == (variant != "motion")


def test_an_unknown_experiment_argument_is_one_line():
    with pytest.raises(ConfigError, match=r"stable_video.py: get_config\('nope'\): variant must be one of"):
        load_config(f"{EXPERIMENTS / 'stable_video.py'}:nope")
