"""Dumoulin et al. 2017, "A Learned Representation for Artistic Style": N fixed paintings, one network.

The style predictor is replaced by a learned table of CIN gamma/beta, one row per painting; N is the number of
images in `data.style` (every image of the folder or dataset split is one style, its row = its record index). With
N = 1 this is Johnson et al.'s single-style network, trained by the same code as the arbitrary model.

Settings from Magenta's `image_stylization_train.py`: Adam 1e-3, batch 16, 256 px square crops without style
augmentation, 40k steps, style weights 1e-4 where the arbitrary trainer uses 0.5e-3 (so 0.2x our calibrated
style weight).

    arbstyle train --config experiments/nstyle.py --workdir runs/nstyle                  # the 22 shared val paintings
    arbstyle train --config experiments/nstyle.py --workdir runs/johnson \
        --config.data.style='shared_paintings:train[:1]'                                  # N = 1: one painting
"""
import ml_collections

from arbstyle.losses import DEFAULT_STYLE_WEIGHT
from arbstyle.paths import shared_dir
from arbstyle.training.experiment import base_config


def get_config() -> ml_collections.ConfigDict:
    c = base_config()
    c.model.predictor = "table"
    c.model.alpha = 1.0
    c.model.num_styles = 0  # 0: one row per image of data.style
    c.model.trunk = ml_collections.ConfigDict()

    shared = shared_dir()
    c.data.content = "shared_content"
    c.data.style = str(shared / "data" / "val" / "styles") if shared is not None else "shared_paintings:train[:32]"
    c.data.content_size = c.data.style_size = 256
    c.data.style_augment = False
    c.data.num_threads = 4

    c.loss.style_weight = 0.2 * DEFAULT_STYLE_WEIGHT
    c.optimizer.learning_rate = 1e-3
    c.train.batch_size = 16
    c.train.steps = 40_000
    c.train.log_every = 50
    c.train.checkpoint_every = 1000
    c.train.keep_checkpoints = 3
    c.train.sample_every = 2000
    c.train.num_samples = 8
    return c
