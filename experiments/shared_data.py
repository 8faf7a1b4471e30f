"""experiments/ghiasi2017.py on the local training set in ../shared/data.

Content: the shared photographs (2,038 train, 86 val). Styles: the shared paintings (6,001) and textures (1,272),
pooled, in the roles of Painter by Numbers and DTD; sample grids use the 86 held-out photos and 22 held-out
paintings. Everything else is the paper's setup (256 px, batch 8, Adam 1e-5, ImageNet-initialised Inception-v3
trained end to end). The TFDS datasets build on first use (about 10 s).

    arbstyle train --config experiments/shared_data.py --workdir runs/shared_data
"""
import ml_collections

from arbstyle.training.experiment import base_config


def get_config() -> ml_collections.ConfigDict:
    c = base_config()
    c.model.predictor = "inception"
    c.model.alpha = 1.0
    c.model.trunk.final_endpoint = "Mixed_6e"
    c.init.trunk = "inception-v3"

    c.data.content = "shared_content"
    c.data.style = "shared_paintings,shared_textures"
    c.data.content_size = c.data.style_size = 256
    c.data.style_augment = True
    c.data.style_random_size = True
    c.data.num_threads = 4

    c.optimizer.learning_rate = 1e-5
    c.train.batch_size = 8
    c.train.steps = 1_000_000
    c.train.log_every = 100
    c.train.checkpoint_every = 2000
    c.train.keep_checkpoints = 3
    c.train.sample_every = 5000
    c.train.num_samples = 8
    return c
