"""Exact mode for int8 QDQ imports: our networks replaying the imported graph's quantization, bit for bit.

Magenta's mobile model ships as ONNX QDQ graphs: every activation passes QuantizeLinear -> DequantizeLinear
(int8, one scale and zero point per tensor), including each step inside conditional instance norm (mean,
squared difference, variance, rsqrt, the scale and shift products). Float activations give a visibly different
picture (the quantization error is part of the released model), so exact mode replays those points.

The subclasses here keep the float networks' parameters and submodules and add the points as `Quantization`
variables (constants read from the file, never trained); only the forward pass differs. It reproduces how
onnxruntime executes the graph on a CPU (see `arbstyle.nets.mlas` for why the arithmetic must match exactly):
which layers it runs as integer kernels is recorded in `ORT_INTEGER_*` below (read from onnxruntime 1.31's
optimized graph; `tests/test_magenta_parity.py` checks the record against the installed onnxruntime).
"""
from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from arbstyle.nets import mlas
from arbstyle.nets.layers import CIN_EPSILON, upsample_nearest
from arbstyle.nets.style_predictor import CINHeads, StylePredictor
from arbstyle.nets.transformer import SIZE_MULTIPLE, Transformer

# Layers onnxruntime fuses into integer kernels (everything else: a float kernel between QuantizeLinear ops).
ORT_INTEGER_CONVS = {
    "transformer": {"contract/conv2"},
    # MobileNet-v2: every depthwise conv, Conv_1, and the 1x1 convs whose input and output are not shared
    "mobilenet": {"expanded_conv/depthwise", "expanded_conv/project", "expanded_conv_1/expand",
                  "expanded_conv_2/project", "expanded_conv_3/expand", "expanded_conv_4/project",
                  "expanded_conv_5/project", "expanded_conv_6/expand", "expanded_conv_7/project",
                  "expanded_conv_8/project", "expanded_conv_9/project", "expanded_conv_10/expand",
                  "expanded_conv_11/project", "expanded_conv_12/project", "expanded_conv_13/expand",
                  "expanded_conv_14/project", "expanded_conv_15/project", "expanded_conv_16/expand",
                  "expanded_conv_16/project", "Conv_1"}
                 | {f"expanded_conv{s}/depthwise" for s in [""] + [f"_{i}" for i in range(1, 17)]},
}
# CIN layers whose mean x scale product onnxruntime leaves as a float Mul (all others: QLinearMul)
ORT_FLOAT_MEAN_SCALE = {"residual2/conv1"}
# onnxruntime's intra-op threads: they decide how MLAS slices narrow GEMMs, hence their K panels
ORT_THREADS = mlas.onnxruntime_threads()


class Quantization(nnx.Variable):
    """A constant of an imported quantized graph: (scale, zero_point) of an activation, per-channel weight or bias
    scales of a layer run as an integer kernel, or the CIN epsilon."""

    @classmethod
    def point(cls) -> "Quantization":
        return cls(jnp.array([1.0, 0.0], jnp.float32))


def _scale_zp(q):
    value = q[...]
    return value[0], value[1]


def fake_quant(x, q):
    """QuantizeLinear then DequantizeLinear: saturate(round_half_even(x / scale) + zp), back to float."""
    scale, zp = _scale_zp(q)
    return (mlas.requantize(mlas.divide(x, scale), zp) - zp) * scale


def steps(x, q):
    """level - zero_point of an already quantized tensor (exact: x is a multiple of the scale)."""
    return jnp.round(x / q[...][0])


def dequant(levels, q):
    scale, zp = _scale_zp(q)
    return (levels - zp) * scale


def quantized_mean(x, q_in, q_out):
    """QLinearGlobalAveragePool over H, W of a quantized (B, H, W, C) tensor -> (B, C), dequantized."""
    ratio = mlas.divide(q_in[...][0], q_out[...][0] * jnp.float32(x.shape[1] * x.shape[2]))
    return dequant(mlas.qlinear_global_average_pool(steps(x, q_in), ratio, q_out[...][1]), q_out)


def quantized_mul(a, q_a, b, q_b, q_out):
    ratio = mlas.divide(q_a[...][0] * q_b[...][0], q_out[...][0])
    return dequant(mlas.qlinear_mul(steps(a, q_a), steps(b, q_b), ratio, q_out[...][1]), q_out)


def quantized_add(a, q_a, b, q_b, q_out):
    """QLinearAdd as onnxruntime runs it here: on uint8 levels (its int8 -> uint8 conversion adds 128)."""
    (sa, za), (sb, zb), (sc, zc) = _scale_zp(q_a), _scale_zp(q_b), _scale_zp(q_out)
    za, zb, zc = za + 128.0, zb + 128.0, zc + 128.0
    ratio_a, ratio_b = mlas.divide(sa, sc), mlas.divide(sb, sc)
    fixed = zc - (mlas.multiply(ratio_a, za) + mlas.multiply(ratio_b, zb))
    levels = mlas.qlinear_add(steps(a, q_a) + za, steps(b, q_b) + zb, ratio_a, ratio_b, fixed)
    return (levels - zc) * sc


class ConvQuantization(nnx.Module):
    """What an integer-kernel conv needs beyond its float weights: per-channel weight and bias scales."""

    def __init__(self, channels: int):
        self.weight_scale = Quantization(jnp.ones((channels,), jnp.float32))
        self.bias_scale = Quantization(jnp.ones((channels,), jnp.float32))


def integer_conv(x, q_in, conv: nnx.Conv, cq: ConvQuantization, q_out, *, bias=None, padding="VALID"):
    """QLinearConv with the layer's float weights turned back into the file's integers."""
    kernel = conv.kernel[...]
    w_scale, b_scale = cq.weight_scale[...], cq.bias_scale[...]
    bias = conv.bias[...] if bias is None else bias
    ratio = mlas.divide(q_in[...][0] * w_scale, q_out[...][0])
    stride = conv.strides if isinstance(conv.strides, int) else conv.strides[0]
    levels = mlas.qlinear_conv(steps(x, q_in), jnp.round(kernel / w_scale), jnp.round(bias / b_scale), ratio,
                               q_out[...][1], stride=stride, padding=padding, groups=conv.feature_group_count)
    return dequant(levels, q_out)


def float_conv(x, conv: nnx.Conv, *, bias=None, pads=((0, 0), (0, 0))):
    """onnxruntime's float Conv (x already quantized, zero padding `pads`) in SGEMM order, plus the bias."""
    padded = any(p for pair in pads for p in pair)
    if padded:
        x = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    stride = conv.strides if isinstance(conv.strides, int) else conv.strides[0]
    bias = (conv.bias[...] if conv.bias is not None else None) if bias is None else bias
    kernel = conv.kernel[...]
    pointwise = kernel.shape[:2] == (1, 1) and stride == 1 and not padded
    return mlas.sgemm_conv(x, kernel, bias, stride, pointwise=pointwise, max_threads=ORT_THREADS)


def dense(x, kernel, bias):
    """A 1x1 float Conv of the file applied to (B, D) vectors (its spatial size is 1x1)."""
    return mlas.sgemm_conv(x[:, None, None, :], kernel[None, None], bias, pointwise=True,
                           max_threads=ORT_THREADS)[:, 0, 0, :]


def _reflect(x, pad: int):
    return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect") if pad else x


# Quantization points of one CIN layer, in the order the graph computes them (names in the file: see the importer).
CIN_POINTS = ("conv", "mean", "sqdiff", "var", "var_eps", "rsqrt", "scale", "mean_scale", "shift", "x_scale", "out")


class CINQuantization(nnx.Module):
    def __init__(self):
        for name in CIN_POINTS:
            setattr(self, name, Quantization.point())


def layer_key(name: str) -> str:
    return name.replace("/", "_")


class QDQTransformer(Transformer):
    """`Transformer` with the file's activation quantization; same parameters, same names.

    Exact mode reads the contract layers' batch norm as folded into the conv (the importer sets identity
    statistics), so only its offset is used, as the file's conv bias.
    """

    def __init__(self, alpha: float = 1.0, *, rngs: nnx.Rngs, dtype=None):
        super().__init__(alpha, rngs=rngs, dtype=dtype)
        self.input_q = Quantization.point()
        self.contract_q = nnx.List([Quantization.point() for _ in range(3)])
        self.residual_q = nnx.List([Quantization.point() for _ in self.residual])
        self.cin_q = nnx.Dict({layer_key(name): CINQuantization() for name, _ in self.cin_layers})
        self.output_q = Quantization.point()
        self.epsilon = Quantization(jnp.float32(CIN_EPSILON))
        self.integer_convs = sorted(ORT_INTEGER_CONVS["transformer"])
        self.conv_q = nnx.Dict({layer_key(name): ConvQuantization(self._conv(name).conv.out_features)
                                for name in self.integer_convs})

    def _conv(self, name: str):
        kind, _, index = name.partition("/conv")
        if kind == "contract":
            return getattr(self, f"contract_conv{index}")
        if kind == "expand":
            return getattr(self, f"expand_conv{index}")
        return getattr(self.residual[int(kind.removeprefix("residual")) - 1], f"conv{index}")

    def _cin(self, name: str, x, style: Mapping, relu: bool):
        q = self.cin_q[layer_key(name)]
        gamma, beta = style[name]
        x = fake_quant(x, q.conv)
        mean = quantized_mean(x, q.conv, q.mean)
        diff = x - mean[:, None, None, :]
        sqdiff = fake_quant(diff * diff, q.sqdiff)
        var = quantized_mean(sqdiff, q.sqdiff, q.var)
        var_eps = fake_quant(var + self.epsilon[...], q.var_eps)
        rsqrt = fake_quant(mlas.divide(1.0, mlas.sqrt(var_eps)), q.rsqrt)  # onnxruntime: Sqrt, then Reciprocal
        scale = fake_quant(rsqrt * gamma, q.scale)
        if name in ORT_FLOAT_MEAN_SCALE:
            mean_scale = fake_quant(mean * scale, q.mean_scale)
        else:
            mean_scale = quantized_mul(mean, q.mean, scale, q.scale, q.mean_scale)
        shift = fake_quant(beta - mean_scale, q.shift)
        x_scale = fake_quant(x * scale[:, None, None, :], q.x_scale)
        shift = jnp.broadcast_to(shift[:, None, None, :], x_scale.shape)
        # a ReLU before the quantization point is the saturation of its uint8 range (zero point 0)
        return quantized_add(x_scale, q.x_scale, shift, q.shift, q.out)

    def _contract(self, index: int, y, q_in):
        conv, bn = getattr(self, f"contract_conv{index}"), getattr(self, f"contract_bn{index}")
        q_out = self.contract_q[index - 1]
        x = _reflect(y, conv.pad)
        name = f"contract/conv{index}"
        if name in self.integer_convs:
            return integer_conv(x, q_in, conv.conv, self.conv_q[layer_key(name)], q_out, bias=bn.bias[...])
        return fake_quant(jax.nn.relu(float_conv(x, conv.conv, bias=bn.bias[...])), q_out)

    def _conv_cin(self, name: str, y, style, relu: bool, upsample: bool = False):
        conv = self._conv(name)
        if upsample:
            y = upsample_nearest(y)
        return self._cin(name, float_conv(_reflect(y, conv.pad), conv.conv), style, relu)

    def __call__(self, x, style: dict, *, stats: dict | None = None, stop_at: str | None = None,
                 start_at: str | None = None):
        if stats or stop_at or start_at:
            raise NotImplementedError("exact (quantized) mode has no tiled inference; use float activations")
        h, w = x.shape[1:3]
        pad_h, pad_w = -h % SIZE_MULTIPLE, -w % SIZE_MULTIPLE
        if pad_h or pad_w:
            x = jnp.pad(x, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
        y, q = fake_quant(x, self.input_q), self.input_q
        for index in (1, 2, 3):
            y, q = self._contract(index, y, q), self.contract_q[index - 1]
        for i, q_add in enumerate(self.residual_q, start=1):
            r = self._conv_cin(f"residual{i}/conv1", y, style, relu=True)
            y = fake_quant(y + self._conv_cin(f"residual{i}/conv2", r, style, relu=False), q_add)
        y = self._conv_cin("expand/conv1", y, style, relu=True, upsample=True)
        y = self._conv_cin("expand/conv2", y, style, relu=True, upsample=True)
        y = self._conv_cin("expand/conv3", y, style, relu=False)
        y = fake_quant(jax.nn.sigmoid(y), self.output_q)
        return y[:, :h, :w, :]


class QDQStylePredictor(StylePredictor):
    """`StylePredictor` whose trunk runs quantized, with the file's pooled-feature and embedding points."""

    def __init__(self, trunk: nnx.Module, dim: int, *, rngs: nnx.Rngs):
        super().__init__(trunk, dim, rngs=rngs)
        self.pooled_q = Quantization.point()
        self.embedding_q = Quantization.point()

    def __call__(self, style):
        features = self.trunk(style * 2.0 - 1.0)
        # onnxruntime keeps this mean in float (a float GlobalAveragePool between quantization points); its
        # summation order matters: a mean of 64 levels lands exactly on a rounding tie once in 64 channels
        pooled = fake_quant(mlas.global_average_pool(features), self.pooled_q)
        embedding = dense(pooled, self.bottleneck.kernel[...], self.bottleneck.bias[...])
        return fake_quant(embedding, self.embedding_q)


class QDQCINHeads(CINHeads):
    """`CINHeads` that quantize the incoming embedding and every gamma and beta as in the file."""

    def __init__(self, cin_layers, dim: int, *, rngs: nnx.Rngs):
        super().__init__(cin_layers, dim, rngs=rngs)
        self.input_q = Quantization.point()
        self.gamma_q = nnx.List([Quantization.point() for _ in self.heads])
        self.beta_q = nnx.List([Quantization.point() for _ in self.heads])

    def __call__(self, embedding) -> dict:
        e = fake_quant(embedding, self.input_q)

        def linear(layer):  # a 1x1 float Conv in the file
            return dense(e, layer.kernel[...], layer.bias[...])

        return {name: (fake_quant(linear(head.gamma), gq), fake_quant(linear(head.beta), bq))
                for name, head, gq, bq in zip(self.names, self.heads, self.gamma_q, self.beta_q)}


def build_parts(config: Mapping, build_trunk, rngs: nnx.Rngs):
    """(transformer, predictor, heads) of a model whose config asks for quantized activations.

    build_trunk is `arbstyle.nets.mobilenet.build_trunk`, passed in rather than imported: mobilenet imports this
    module for its quantizers."""
    if config["predictor"] != "mobilenet":
        raise ValueError("quantized activations exist only for imported int8 models (predictor 'mobilenet'), "
                         f"not {config['predictor']!r}")
    transformer = QDQTransformer(config["alpha"], rngs=rngs)
    trunk = build_trunk(config["trunk"], rngs=rngs, quantized=True)
    predictor = QDQStylePredictor(trunk, config["embedding_dim"], rngs=rngs)
    heads = QDQCINHeads(transformer.cin_layers, config["embedding_dim"], rngs=rngs)
    return transformer, predictor, heads
