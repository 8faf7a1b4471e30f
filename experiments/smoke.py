"""Smoke test: a tiny arbitrary-style model trained for a few steps on CPU, in seconds.

Real images, few of them: the validation photos and paintings of ../shared/data (86 + 22 files, so the TFDS
datasets build in seconds; the full training folders are what experiments/shared_data.py uses). 64 px crops,
batch 2, a quarter-width transformer, and the Inception stem (to MaxPool_5a_3x3) as the style predictor's trunk.

    arbstyle train --config experiments/smoke.py --workdir runs/smoke
"""
import ml_collections

from arbstyle.paths import shared_dir
from arbstyle.training.experiment import base_config


def get_config() -> ml_collections.ConfigDict:
    c = base_config()
    c.model.predictor = "inception"
    c.model.alpha = 0.25
    c.model.trunk.final_endpoint = "MaxPool_5a_3x3"

    shared = shared_dir()
    if shared is not None:
        c.data.content = str(shared / "data" / "val" / "content")
        c.data.style = str(shared / "data" / "val" / "styles")
    else:  # no ../shared here: the run stops with a one-line error naming what is missing
        c.data.content, c.data.style = "shared_content", "shared_paintings"
    c.data.content_size = c.data.style_size = 64
    c.data.style_resize_extra = (2, 32)
    c.data.num_threads = 2

    c.optimizer.learning_rate = 1e-3  # far above the paper's 1e-5: a few steps must visibly lower the loss
    c.train.batch_size = 2
    c.train.steps = 12
    c.train.log_every = 1
    c.train.checkpoint_every = 6
    c.train.keep_checkpoints = 2
    c.train.sample_every = 6
    c.train.num_samples = 2
    return c
