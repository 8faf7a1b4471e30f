"""The noise-stability term of the training step (config.loss.stability_*, Gupta et al. 2017), on a tiny real batch."""
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


def _step(stability):
    model = trainer.init_model({"predictor": "table", "alpha": 0.25, "num_styles": 2}, seed=0)
    graphdef, _, keep, _, pieces = trainer.split_for_training(model)
    tx, schedule = trainer.make_optimizer(ml_collections.ConfigDict(base_config().optimizer.to_dict()), 10)
    state = dict(pieces, step=jnp.zeros((), jnp.int32), rng=jax.random.PRNGKey(0), opt_state=tx.init(pieces["params"]))
    cfg = losses.LossConfig(content_layers=(("relu2_2", 1.0),), style_layers=(("relu1_2", 1.0), ("relu2_2", 1.0)))
    vgg_graphdef, vgg_state = nnx.split(load_vgg16(cfg.pooling))
    step = jax.jit(trainer.make_train_step(graphdef, vgg_graphdef, tx, schedule, cfg, keep, False, 0, stability))
    photos = [np.asarray(im, np.float32)[:32, :32] / 255.0 for _, im in real_images(4, short_side=32)]
    batch = {"content": np.stack(photos[:2]), "style": np.stack(photos[2:]), "style_id": np.arange(2, dtype=np.int32)}
    _, metrics = step(state, vgg_state, batch)
    return {k: float(v) for k, v in metrics.items() if k.startswith("loss/")}


def test_stability_term_adds_the_weighted_output_change_under_noise():
    plain = _step((0.0, 0.0))
    assert "loss/stability" not in plain
    noisy = _step((1000.0, 0.05))
    assert noisy["loss/stability"] > 0
    # the same step, plus the term: the perceptual part is unchanged
    np.testing.assert_allclose(noisy["loss/total"] - noisy["loss/stability"], plain["loss/total"], rtol=1e-5)
    assert _step((1000.0, 0.0))["loss/stability"] == 0.0  # no noise, no change
