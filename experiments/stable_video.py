"""Stability for video: `ghiasi-inception`'s transformer fine-tuned to stop turning small input changes (sensor
noise, compression, sub-pixel motion) into flicker (README, "Temporal stability"). Three variants, all experiments,
none shipped; only the transformer learns, the Inception-v3 style predictor and the CIN heads stay frozen, so a
painting embeds as before.

- `perceptual` (the default): the shipped model's own loss (its GPU fine-tune weighted style 3x) plus the
  noise-stability term of Gupta et al. 2017: the mean squared difference between a stylized 128 px crop and the
  same crop stylized with Gaussian noise of standard deviation 0.02 added (`loss.stability_weight`,
  `loss.stability_noise`).
- `teacher`: no perceptual loss (the loss network is not run); the teacher term holds the output to the shipped
  transformer's on the same crop (`loss.teacher_weight`) while the noise-stability term asks for the same output
  under noise. The transformer's batch norm stays in inference mode, so student and teacher normalise alike.
- `motion`: as `teacher`, with the motion term instead of the noise term: the stylization of the crop moved by up
  to 2 pixels must equal the stylization moved by as much (`loss.motion_weight`, `loss.motion_shift`). On clean
  camera moves the shipped model flickers almost as much as on noisy ones (benchmarks/results/video_clean_input.md):
  sub-pixel motion, not noise, is the main source.

    arbstyle train --config experiments/stable_video.py --workdir runs/stable_video
    arbstyle train --config experiments/stable_video.py:teacher --workdir runs/stable_video_teacher
    arbstyle train --config experiments/stable_video.py:motion --workdir runs/stable_video_motion
    arbstyle stylize clip.mp4 -s painting.jpg --model runs/stable_video_teacher -o out.mp4
    python benchmarks/video_bench.py --model runs/stable_video --reference benchmarks/results/video.json \\
        --modes off,flow@0.3,flow@0.6 --speed-sizes "" --strip "" --out benchmarks/results/video_stable

Results, frame by frame against the shipped model's output on the same clips (benchmarks/results/video_stable*.md):
`perceptual`, 1,500 steps (39 min on a 2-core CPU): 0.36x the warping error on noisy synthetic camera moves,
0.22-0.24x the change over static pixels of real clips, but 1.31-1.39x the style loss; at
--config.loss.stability_weight=4000 --config.train.steps=800: 0.52x, 0.35-0.44x, 1.21-1.22x. `teacher`, 800 steps
(7 min): 0.59x, 0.41-0.57x, 1.19-1.22x. `motion`, 800 steps (7 min): 0.58x, 0.57-0.73x, 1.28-1.30x.
"""
import ml_collections

from arbstyle.training.experiment import base_config

VARIANTS = ("perceptual", "teacher", "motion")


def get_config(variant: str = "perceptual") -> ml_collections.ConfigDict:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    c = base_config()
    c.init.model = "ghiasi-inception"
    c.model.predictor = "inception"
    c.model.alpha = 0.25
    c.model.trunk.final_endpoint = "Mixed_6e"

    c.data.content = "shared_content"
    c.data.style = "shared_paintings,shared_textures"
    c.data.eval_content = "shared_content:val"
    c.data.eval_style = "shared_paintings:val"
    c.data.content_size = 128
    c.data.style_size = 256  # the predictor's inference size
    c.data.style_augment = True
    c.data.num_threads = 2

    c.train.freeze = ("predictor", "heads")
    c.optimizer.learning_rate = 1e-4
    c.optimizer.warmup_steps = 20
    c.optimizer.schedule = "cosine"
    c.train.batch_size = 4
    c.train.steps = 1500
    c.train.log_every = 10
    c.train.checkpoint_every = 50
    c.train.keep_checkpoints = 5
    c.train.sample_every = 250
    c.train.num_samples = 4
    c.loss.stability_noise = 0.02

    if variant == "perceptual":
        c.loss.style_weight = 3.0
        c.loss.style_size = 128  # Gram targets from the style at the crop's scale
        # Noise of sigma 0.02 changes the shipped network's 128 px output by a mean squared 1e-4 to 4e-4 (first
        # steps of a run at weight 1000), against a perceptual loss of about 10 at style weight 3: at 20000 the
        # stability term starts at 2-8, the same order.
        c.loss.stability_weight = 20000.0
        return c

    c.loss.content_weight = c.loss.style_weight = c.loss.tv_weight = 0.0
    c.train.freeze = ("predictor", "heads", "transformer/contract_bn1", "transformer/contract_bn2",
                      "transformer/contract_bn3")
    c.train.steps = 800
    c.train.sample_every = 200
    # The terms are mean squared differences of outputs in [0, 1]; the scale only sets the logged numbers (Adam
    # normalises it away), the ratio sets the trade.
    c.loss.teacher_weight = 1000.0
    if variant == "teacher":
        # At equal weights (800 steps) the output's change under noise stayed where it started (mean squared 2e-4);
        # at 10x it fell to 8.5e-5 while the output moved 7.5e-4 from the teacher's.
        c.loss.stability_weight = 10000.0
    else:
        c.loss.motion_weight = 1000.0
        c.loss.motion_shift = 2.0
    return c
