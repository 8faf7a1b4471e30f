"""Adapt Magenta's mobile arbitrary-style model (`magenta-mobile`: MobileNet-v2 style predictor, quarter-width
transformer) to a new collection of paintings.

It starts from the imported weights (`arbstyle.weights.registry.load_model('magenta-mobile')`, float activations) and,
as Magenta trained that model, keeps the MobileNet trunk fixed (its batch norm folded, nothing to update) while the
bottleneck, the CIN heads and the transformer learn. Point `data.style` at the new paintings: a folder (any
layout) or a dataset spec.

    arbstyle train --config experiments/finetune_magenta_mobile.py --workdir runs/mobile_ft \
        --config.data.style=~/my_paintings
"""
import ml_collections

from arbstyle.training.experiment import base_config


def get_config() -> ml_collections.ConfigDict:
    c = base_config()
    c.init.model = "magenta-mobile"
    # The architecture comes from the imported model; these fields only document it.
    c.model.predictor = "mobilenet"
    c.model.alpha = 0.25
    c.model.trunk = ml_collections.ConfigDict()

    c.data.content = "shared_content"
    c.data.style = "shared_paintings"  # the new collection: override with --config.data.style=...
    c.data.content_size = c.data.style_size = 256
    c.data.style_augment = True
    c.data.num_threads = 4

    c.optimizer.learning_rate = 1e-5
    c.train.freeze = ("predictor/trunk",)
    c.train.batch_size = 8
    c.train.steps = 20_000
    c.train.log_every = 50
    c.train.checkpoint_every = 1000
    c.train.keep_checkpoints = 3
    c.train.sample_every = 1000
    c.train.num_samples = 8
    return c
