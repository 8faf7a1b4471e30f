"""The noise-stability term (config.loss.stability_*, Gupta et al. 2017), the teacher term (config.loss.teacher_weight)
and the motion term (config.loss.motion_*) of the training step, on a tiny real batch."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from arbstyle import losses
from arbstyle.nets.vgg import load_vgg16
from arbstyle.training import train as trainer
from arbstyle.training.experiment import base_config
from test_data_samples import real_images


MODEL = {"predictor": "table", "alpha": 0.25, "num_styles": 2}
LOSS = losses.LossConfig(content_layers=(("relu2_2", 1.0),), style_layers=(("relu1_2", 1.0), ("relu2_2", 1.0)))


def _batch():
    photos = [np.asarray(im, np.float32)[:32, :32] / 255.0 for _, im in real_images(4, short_side=32)]
    return {"content": np.stack(photos[:2]), "style": np.stack(photos[2:]), "style_id": np.arange(2, dtype=np.int32)}


def _step(stability, cfg=LOSS, teacher=None, weight=0.0, with_output=False, motion=(0.0, 0.0)):
    model = trainer.init_model(MODEL, seed=0)
    graphdef, _, keep, _, pieces = trainer.split_for_training(model)
    tx, schedule = trainer.make_optimizer(ml_collections.ConfigDict(base_config().optimizer.to_dict()), 10)
    state = dict(pieces, step=jnp.zeros((), jnp.int32), rng=jax.random.PRNGKey(0), opt_state=tx.init(pieces["params"]))
    vgg_graphdef, vgg_state = nnx.split(load_vgg16(cfg.pooling))
    teacher_graphdef, teacher_state = nnx.split(teacher) if teacher is not None else (None, None)
    step = jax.jit(trainer.make_train_step(graphdef, vgg_graphdef, tx, schedule, cfg, keep, False, 0, stability,
                                           (teacher_graphdef, weight), motion))
    batch = _batch()
    _, metrics = step(state, vgg_state, batch, teacher_state)
    found = {k: float(v) for k, v in metrics.items() if k.startswith("loss/")}
    if with_output:  # what the step's forward pass produced (training mode, the state before the update)
        model = nnx.merge(graphdef, pieces["params"], pieces["frozen"], pieces["batch_stats"], pieces["other"])
        return found, np.asarray(model(batch["content"], batch["style_id"]))
    return found


def test_stability_term_adds_the_weighted_output_change_under_noise():
    plain = _step((0.0, 0.0))
    assert "loss/stability" not in plain
    noisy = _step((1000.0, 0.05))
    assert noisy["loss/stability"] > 0
    # the same step, plus the term: the perceptual part is unchanged
    np.testing.assert_allclose(noisy["loss/total"] - noisy["loss/stability"], plain["loss/total"], rtol=1e-5)
    assert _step((1000.0, 0.0))["loss/stability"] == 0.0  # no noise, no change


def test_teacher_term_is_the_weighted_distance_to_the_fixed_models_output():
    teacher = trainer.init_model(MODEL, seed=1)
    trainer.set_mode(teacher, False)
    batch = _batch()
    expected = np.asarray(teacher(batch["content"], batch["style_id"]))
    no_perceptual = losses.LossConfig(content_weight=0.0, style_weight=0.0, tv_weight=0.0)
    found, stylized = _step((0.0, 0.0), no_perceptual, teacher, 10.0, with_output=True)
    np.testing.assert_allclose(found["loss/teacher"], 10.0 * np.mean((stylized - expected) ** 2), rtol=1e-4)
    assert found["loss/teacher"] > 0
    assert found["loss/total"] == found["loss/teacher"] and "loss/content" not in found  # no perceptual part
    # on top of the perceptual loss and the stability term, each reported on its own
    both = _step((1000.0, 0.05), LOSS, teacher, 10.0)
    plain = _step((0.0, 0.0))
    np.testing.assert_allclose(both["loss/total"] - both["loss/teacher"] - both["loss/stability"],
                               plain["loss/total"], rtol=1e-5)


def test_shift_images_moves_by_whole_and_half_pixels():
    image = np.random.default_rng(0).random((1, 6, 7, 3)).astype(np.float32)
    moved = np.asarray(trainer.shift_images(image, np.float32([[1.0, -2.0]])))
    np.testing.assert_allclose(moved[0, 1:, :-2], image[0, :-1, 2:], atol=1e-6)
    half = np.asarray(trainer.shift_images(image, np.float32([[0.0, 0.5]])))
    np.testing.assert_allclose(half[0, :, 1:], (image[0, :, 1:] + image[0, :, :-1]) / 2, atol=1e-6)


def test_motion_term_measures_how_far_the_output_is_from_moving_with_the_input():
    plain = _step((0.0, 0.0))
    moved = _step((0.0, 0.0), motion=(1000.0, 1.5))
    assert moved["loss/motion"] > 0
    np.testing.assert_allclose(moved["loss/total"] - moved["loss/motion"], plain["loss/total"], rtol=1e-5)
    assert _step((0.0, 0.0), motion=(1000.0, 0.0))["loss/motion"] < 1e-9  # no shift, nothing to follow
