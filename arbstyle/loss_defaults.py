"""Default loss weights, in a module without JAX.

`arbstyle optimize --help` shows them before anything heavy is imported; `arbstyle.losses.LossConfig` takes its
defaults from here. How they were measured: docs/losses.md and benchmarks/results/optimize_calibration.md
(`python benchmarks/optimize_bench.py calibrate`).
"""

DEFAULT_CONTENT_LAYERS = (("relu3_3", 1.0),)
DEFAULT_STYLE_LAYERS = (("relu1_2", 0.91), ("relu2_2", 0.96), ("relu3_3", 3.6), ("relu4_3", 530.0))
DEFAULT_CONTENT_WEIGHT = 1.0
DEFAULT_STYLE_WEIGHT = 1.0
DEFAULT_TV_WEIGHT = 3.0
POOLINGS = ("avg", "max")  # VGG-16's pooling: average (smoother Gram statistics) or the original max
DEFAULT_POOLING = "avg"
