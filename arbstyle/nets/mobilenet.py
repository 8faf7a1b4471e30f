"""MobileNet-v2 (Sandler et al. 2018) as the style predictor trunk of Magenta's mobile arbitrary-style model.

Magenta's released mobile predictor runs the whole MobileNet-v2 feature extractor, through `Conv_1` (the 1x1
conv to 1280 channels, slim's `layer_19`); the predictor then takes the spatial mean and a 1x1 conv to the
100-d embedding. The released graph has batch norm folded into every convolution, so each conv here carries a
bias and there is no batch norm. Its first convolution reads pixels in [0, 1] (the graph quantizes the style
image with scale 1/255 and feeds it straight in), whereas `StylePredictor` hands trunks [-1, 1]: the trunk maps
back first.

Names follow slim's scopes (`Conv`, `expanded_conv`, `expanded_conv_1` ... `expanded_conv_16`, `Conv_1`), so the
importer maps the file's layers one to one.

`quantized=True` adds the file's activation quantization points (int8 scale and zero point after every layer,
as in the QDQ graph) and runs the trunk with them: see `arbstyle.nets.qdq`.
"""
from __future__ import annotations

from collections.abc import Mapping

import jax.numpy as jnp
from flax import nnx

from arbstyle.nets import qdq
from arbstyle.nets.layers import kernel_init

# (expansion t, output channels c, repeats n, first stride s): Sandler et al. 2018, Table 2
BLOCKS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
STEM_CHANNELS = 32
OUT_CHANNELS = 1280


def block_names() -> list[str]:
    count = sum(n for _, _, n, _ in BLOCKS)
    return ["expanded_conv"] + [f"expanded_conv_{i}" for i in range(1, count)]


def relu6(x):
    return jnp.clip(x, 0.0, 6.0)


class ConvAct(nnx.Module):
    """A convolution with a bias (batch norm folded in), then ReLU6 or nothing; TF's SAME padding.

    `quantized` adds the output's quantization point; `integer` marks a layer that onnxruntime runs as an integer
    kernel (QLinearConv), which also needs the file's weight and bias scales.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1, *,
                 activation: bool = True, quantized: bool = False, integer: bool = False, rngs: nnx.Rngs):
        self.conv = nnx.Conv(in_ch, out_ch, (kernel, kernel), strides=stride, padding="SAME",
                             feature_group_count=groups, use_bias=True, kernel_init=kernel_init, rngs=rngs)
        self.kernel_size, self.stride = kernel, stride
        self.activation = activation
        self.out_q = qdq.Quantization.point() if quantized else None
        self.conv_q = qdq.ConvQuantization(out_ch) if quantized and integer else None

    def __call__(self, x):
        if self.conv.feature_group_count > 1:
            y = self._depthwise(x)
        else:
            y = self.conv(x)
        return relu6(y) if self.activation else y

    def _depthwise(self, x):
        """The depthwise conv as kernel-size^2 shifted multiply-adds, which XLA fuses into one loop: its grouped
        convolution is 25-1000x slower on CPU at these shapes (benchmarks/peer_latency_bench.py)."""
        k, s = self.kernel_size, self.stride
        pads = [_same_pads(size, k, s) for size in x.shape[1:3]]
        x = jnp.pad(x, ((0, 0), *pads, (0, 0)))
        ho, wo = (x.shape[1] - k) // s + 1, (x.shape[2] - k) // s + 1
        kernel = self.conv.kernel[...][:, :, 0, :]
        y = self.conv.bias[...]
        for i in range(k):
            for j in range(k):
                y = y + x[:, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s, :] * kernel[i, j]
        return y

    def quantized(self, x, q_in):
        """Exact mode: x is quantized with q_in; returns the output quantized with `out_q`, and `out_q`."""
        if self.conv_q is not None:  # the clamp of the output range [0, 6] is the ReLU6
            return qdq.integer_conv(x, q_in, self.conv, self.conv_q, self.out_q, padding="SAME"), self.out_q
        pads = tuple(_same_pads(size, self.kernel_size, self.stride) for size in x.shape[1:3])
        y = qdq.float_conv(x, self.conv, pads=pads)
        return qdq.fake_quant(relu6(y) if self.activation else y, self.out_q), self.out_q


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME padding: the extra pixel, if any, goes after."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class InvertedResidual(nnx.Module):
    """1x1 expand (skipped when t = 1) -> 3x3 depthwise -> linear 1x1 project; identity shortcut when shapes match."""

    def __init__(self, name: str, in_ch: int, out_ch: int, expansion: int, stride: int, *, quantized: bool,
                 rngs: nnx.Rngs):
        mid = in_ch * expansion

        def layer(part, *args, **kwargs):
            integer = f"{name}/{part}" in qdq.ORT_INTEGER_CONVS["mobilenet"]
            return ConvAct(*args, quantized=quantized, integer=integer, rngs=rngs, **kwargs)

        self.expand = layer("expand", in_ch, mid, 1) if expansion != 1 else None
        self.depthwise = layer("depthwise", mid, mid, 3, stride, groups=mid)
        self.project = layer("project", mid, out_ch, 1, activation=False)
        self.residual = stride == 1 and in_ch == out_ch
        self.add_q = qdq.Quantization.point() if quantized and self.residual else None

    def __call__(self, x):
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y

    def quantized(self, x, q_in):
        y, q = x, q_in
        for part in (self.expand, self.depthwise, self.project):
            if part is not None:
                y, q = part.quantized(y, q)
        if not self.residual:
            return y, q
        return qdq.fake_quant(x + y, self.add_q), self.add_q  # a float Add in onnxruntime


class MobileNetV2(nnx.Module):
    """The feature extractor through `Conv_1`; input in [-1, 1] (the `StylePredictor` convention)."""

    def __init__(self, *, quantized: bool = False, rngs: nnx.Rngs):
        self.quantized = quantized
        self.input_q = qdq.Quantization.point() if quantized else None
        integer = qdq.ORT_INTEGER_CONVS["mobilenet"]
        self.Conv = ConvAct(3, STEM_CHANNELS, 3, 2, quantized=quantized, integer="Conv" in integer, rngs=rngs)
        blocks, ch, names = [], STEM_CHANNELS, iter(block_names())
        for expansion, out_ch, repeats, stride in BLOCKS:
            for i in range(repeats):
                blocks.append(InvertedResidual(next(names), ch, out_ch, expansion, stride if i == 0 else 1,
                                               quantized=quantized, rngs=rngs))
                ch = out_ch
        self.blocks = nnx.List(blocks)
        self.Conv_1 = ConvAct(ch, OUT_CHANNELS, 1, quantized=quantized, integer="Conv_1" in integer, rngs=rngs)
        self.out_channels = OUT_CHANNELS

    def layers(self) -> dict[str, nnx.Module]:
        """slim scope name -> module, for the importer."""
        named = {"Conv": self.Conv, "Conv_1": self.Conv_1}
        named.update(zip(block_names(), self.blocks))
        return named

    def __call__(self, x):
        x = (x + 1.0) * 0.5  # the released weights expect [0, 1] pixels (see the module docstring)
        if self.quantized:
            y, q = qdq.fake_quant(x, self.input_q), self.input_q
            for layer in (self.Conv, *self.blocks, self.Conv_1):
                y, q = layer.quantized(y, q)
            return y
        y = self.Conv(x)
        for block in self.blocks:
            y = block(y)
        return self.Conv_1(y)


def build_trunk(trunk_config: Mapping, *, rngs: nnx.Rngs, quantized: bool = False) -> MobileNetV2:
    """The `mobilenet` entry of `arbstyle.model.TRUNKS` (it takes no options); `qdq.build_parts` sets `quantized`."""
    if trunk_config:
        raise KeyError(f"the mobilenet trunk takes no options, got {sorted(trunk_config)}")
    return MobileNetV2(quantized=quantized, rngs=rngs)
