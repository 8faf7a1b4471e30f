"""Making a model: experiment configs, the data-parallel training loop behind `arbstyle train`, its Orbax
checkpoints and TensorBoard logs, and the closed-form distillation that starts a style predictor."""
