"""The image transformation network of Johnson et al. 2016 as conditioned by Dumoulin et al. / Ghiasi et al. 2017.

Magenta's layout exactly: reflect-padded VALID convolutions without bias; a contracting path with batch norm
(offset only, eps 1e-3); five residual blocks and an expanding path whose every convolution is followed by
conditional instance norm (CIN) with per-sample gamma and beta; nearest-neighbour upsampling; a sigmoid output.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from arbstyle.nets import SIZE_MULTIPLE  # noqa: F401  (re-exported)
from arbstyle.nets.layers import ReflectConv, batch_norm, conditional_instance_norm, instance_stats, upsample_nearest

NUM_RESIDUAL = 5


def cin_layer_names() -> list[str]:
    """Magenta's order of the CIN layers (the order of the predictor's heads and of a style table's columns)."""
    names = [f"residual{i}/conv{j}" for i in range(1, NUM_RESIDUAL + 1) for j in (1, 2)]
    return names + ["expand/conv1", "expand/conv2", "expand/conv3"]


class ResidualBlock(nnx.Module):
    def __init__(self, channels: int, *, rngs: nnx.Rngs, dtype=None):
        self.conv1 = ReflectConv(channels, channels, 3, rngs=rngs, dtype=dtype)
        self.conv2 = ReflectConv(channels, channels, 3, rngs=rngs, dtype=dtype)


class Transformer(nnx.Module):
    """Stylizes an image given per-layer CIN parameters.

    `style` maps each name of `cin_layers` to (gamma, beta), each (B, C). The output has the input's exact
    height and width. For exact tiled inference two hooks exist: `stats` maps layer names to whole-image
    (mean, var) used instead of the tile's own, and `stop_at` returns the named layer's input to its norm.
    """

    def __init__(self, alpha: float = 1.0, *, rngs: nnx.Rngs, dtype=None):
        c1, c2, c3 = int(32 * alpha), int(64 * alpha), int(128 * alpha)
        self.alpha = alpha
        self.contract_conv1 = ReflectConv(3, c1, 9, rngs=rngs, dtype=dtype)
        self.contract_bn1 = batch_norm(c1, rngs)
        self.contract_conv2 = ReflectConv(c1, c2, 3, stride=2, rngs=rngs, dtype=dtype)
        self.contract_bn2 = batch_norm(c2, rngs)
        self.contract_conv3 = ReflectConv(c2, c3, 3, stride=2, rngs=rngs, dtype=dtype)
        self.contract_bn3 = batch_norm(c3, rngs)
        self.residual = nnx.List([ResidualBlock(c3, rngs=rngs, dtype=dtype) for _ in range(NUM_RESIDUAL)])
        self.expand_conv1 = ReflectConv(c3, c2, 3, rngs=rngs, dtype=dtype)
        self.expand_conv2 = ReflectConv(c2, c1, 3, rngs=rngs, dtype=dtype)
        self.expand_conv3 = ReflectConv(c1, 3, 9, rngs=rngs, dtype=dtype)
        self.cin_layers: list[tuple[str, int]] = list(zip(cin_layer_names(), [c3] * (2 * NUM_RESIDUAL) + [c2, c1, 3]))

    # Block boundaries at which a forward pass can stop (returning the activation entering the block) or resume.
    STAGES = ("contract", *(f"residual{i}" for i in range(1, NUM_RESIDUAL + 1)), "expand1", "expand2", "expand3")

    def __call__(self, x, style: dict, *, stats: dict | None = None, stop_at: str | None = None,
                 start_at: str | None = None):
        """`stop_at`: a CIN layer name (returns that layer's input to its norm) or a stage of STAGES (returns the
        activation entering it). `start_at`: a stage; `x` is then that stage's input activation, and the output
        is not cropped (the caller knows the geometry). Tiled inference caches the residual stream this way
        instead of recomputing the full-resolution layers for every layer's statistics.
        """
        if start_at is None:
            h, w = x.shape[1:3]
            pad_h, pad_w = -h % SIZE_MULTIPLE, -w % SIZE_MULTIPLE
            if pad_h or pad_w:
                x = jnp.pad(x, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="reflect")

        class _Stop(Exception):
            pass

        def norm(name, y):
            if name == stop_at:
                raise _Stop(y)
            mean, var = stats[name] if stats and name in stats else instance_stats(y)
            gamma, beta = style[name]
            return conditional_instance_norm(y, gamma, beta, mean, var)

        def contract(y):
            y = jax.nn.relu(self.contract_bn1(self.contract_conv1(y)))
            y = jax.nn.relu(self.contract_bn2(self.contract_conv2(y)))
            return jax.nn.relu(self.contract_bn3(self.contract_conv3(y)))

        def residual(i, y):
            block = self.residual[i - 1]
            r = jax.nn.relu(norm(f"residual{i}/conv1", block.conv1(y)))
            return y + norm(f"residual{i}/conv2", block.conv2(r))

        stages = {"contract": contract,
                  **{f"residual{i}": (lambda y, i=i: residual(i, y)) for i in range(1, NUM_RESIDUAL + 1)},
                  "expand1": lambda y: jax.nn.relu(norm("expand/conv1", self.expand_conv1(upsample_nearest(y)))),
                  "expand2": lambda y: jax.nn.relu(norm("expand/conv2", self.expand_conv2(upsample_nearest(y)))),
                  "expand3": lambda y: jax.nn.sigmoid(norm("expand/conv3", self.expand_conv3(y)).astype(jnp.float32))}
        names = list(self.STAGES)
        y = x
        try:
            for name in names[names.index(start_at) if start_at else 0:]:
                if name == stop_at:
                    raise _Stop(y)
                y = stages[name](y)
        except _Stop as stop:
            return stop.args[0]
        return y if start_at else y[:, :h, :w, :]
