"""Ghiasi et al. 2017, "Exploring the structure of a real-time, arbitrary neural artistic stylization network".

As in the paper and Magenta's `arbitrary_image_stylization_train.py`: ImageNet photos as content; Painter by
Numbers paintings and DTD textures as styles (pooled); 256 px crops; batch 8; Adam, learning rate 1e-5, no gradient
clipping; style images augmented (colour jitter, flips, random resize and crop) and resized per batch to a random
size (here drawn from 128/192/256 px buckets so the jitted step compiles a few shapes, not one per size); the style
predictor is Inception-v3 up to Mixed_6e, initialised from ImageNet weights and trained with everything else;
8M steps (Magenta's default `train_steps`). Content and style weights are arbitrary's calibrated LossConfig
defaults (our VGG-16 is torchvision's, on [0, 1] input; docs/losses.md explains the calibration).

The archives are not downloadable automatically; put them in one folder and pass it:

    arbstyle train --config experiments/ghiasi2017.py --workdir runs/ghiasi2017 \
        --config.data.manual_dir=~/archives      # ILSVRC2012_img_train.tar (+ _val.tar), PBN train.zip +
                                                 # all_data_info.csv, dtd-r1.0.1.tar.gz
"""
import ml_collections

from arbstyle.training.experiment import base_config


def get_config() -> ml_collections.ConfigDict:
    c = base_config()
    c.model.predictor = "inception"
    c.model.alpha = 1.0
    c.model.trunk.final_endpoint = "Mixed_6e"
    c.init.trunk = "inception-v3"  # arbstyle.weights.pretrained: slim Inception-v3 trained on ImageNet

    c.data.content = "imagenet_content"
    c.data.style = "painter_by_numbers,dtd"
    # Sample grids: held-out photos and paintings by artists never seen in training (the paper's claim).
    c.data.eval_content = "imagenet_content:validation"
    c.data.eval_style = "painter_by_numbers:test"
    c.data.content_size = c.data.style_size = 256
    c.data.style_augment = True
    c.data.style_random_size = True
    c.data.num_threads = 8

    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 1e-5
    c.optimizer.clip_norm = 0.0

    c.train.batch_size = 8
    c.train.steps = 8_000_000
    c.train.log_every = 100
    c.train.checkpoint_every = 5000
    c.train.keep_checkpoints = 5
    c.train.sample_every = 10_000
    c.train.num_samples = 8
    return c
