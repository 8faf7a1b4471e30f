"""Read Magenta's TFLite style transformers (the shared reference files) into our networks, and run them.

`magenta_inception_transfer/...dr_transfer_1.tflite` holds the full-width (alpha=1.0) transformer of the
Inception-v3 model and its bottleneck->CIN heads, with dynamic-range int8 weights (per output channel scales,
zero points 0; the three-channel heads of expand/conv3 stay float32). Batch norm is folded into the contract
convolutions (their bias is the folded offset). We dequantize the weights (q * scale) and load them into
`Transformer(1.0)` + `CINHeads`; its interpreter quantizes activations on the fly, which our float network does
not, so agreement is close but not exact.

The interpreter comes from `ai-edge-litert` (a test extra): this module is for parity checks, not runtime.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from arbstyle.nets.layers import BN_EPSILON

INCEPTION_TRANSFER = ("magenta_inception_transfer/"
                      "lite-model_arbitrary-image-stylization-inceptionv3-dynamic-shapes_dr_transfer_1.tflite")
MOBILE_PREDICT = "magenta_mobile/style_predict_quantized_256.tflite"
MOBILE_TRANSFER = "magenta_mobile/style_transfer_f16_384.tflite"


class TFLiteImportError(ValueError):
    """The TFLite file is not what we know how to read (the message names the file)."""


def interpreter(path: Path, inputs: dict[str, tuple] | None = None, *, delegate: bool = True):
    """An allocated interpreter; `inputs` resizes named inputs first (the inception model has dynamic shapes).

    `delegate=False` keeps the op graph as written (no XNNPACK delegate node in it), for reading.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError as err:
        raise TFLiteImportError("reading TFLite files needs the ai-edge-litert package (a test extra)") from err
    resolver = OpResolverType.AUTO if delegate else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    it = Interpreter(model_path=str(path), experimental_op_resolver_type=resolver)
    for detail in it.get_input_details():
        if inputs and detail["name"] in inputs:
            it.resize_tensor_input(detail["index"], list(inputs[detail["name"]]))
    it.allocate_tensors()
    return it


def run(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """Run a TFLite model on named float32 inputs; returns its (first) output."""
    it = interpreter(path, {name: value.shape for name, value in feeds.items()})
    for detail in it.get_input_details():
        it.set_tensor(detail["index"], np.ascontiguousarray(feeds[detail["name"]], np.float32))
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"]).copy()


class TFLiteGraph:
    """Constant tensors and ops of a TFLite model, by name."""

    def __init__(self, path: Path, inputs: dict[str, tuple] | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise TFLiteImportError(f"{self.path}: not found")
        self.it = interpreter(self.path, inputs, delegate=False)
        self.tensors = {d["index"]: d for d in self.it.get_tensor_details()}
        self.by_name = {d["name"]: i for i, d in self.tensors.items()}
        self.ops = self.it._get_ops_details()  # noqa: SLF001  (the only door to the op graph)
        self.consumers: dict[int, list[dict]] = {}
        for op in self.ops:
            for i in op["inputs"]:
                self.consumers.setdefault(i, []).append(op)

    def fail(self, problem: str):
        raise TFLiteImportError(f"{self.path}: {problem}")

    def constant(self, index: int) -> np.ndarray:
        """A constant tensor as float32, dequantized per channel if it is int8."""
        detail = self.tensors[index]
        value = self.it.get_tensor(index)
        if value.dtype == np.int8:
            q = detail["quantization_parameters"]
            scales, zps, axis = q["scales"], q["zero_points"], q["quantized_dimension"]
            if len(scales) == 0:
                self.fail(f"{detail['name']} is int8 without scales")
            shape = [1] * value.ndim
            shape[axis] = -1
            return ((value.astype(np.int32) - zps.reshape(shape)).astype(np.float32)
                    * scales.astype(np.float32).reshape(shape))
        return value.astype(np.float32)

    def convs(self) -> dict[str, tuple[np.ndarray, np.ndarray, dict]]:
        """Every CONV_2D keyed by its weight tensor's scope: (kernel HWIO, bias, op)."""
        out = {}
        for op in self.ops:
            if op["op_name"] != "CONV_2D":
                continue
            x, w, b = op["inputs"][:3]
            name = self.tensors[w]["name"].rsplit("/", 1)[0]
            kernel = self.constant(w).transpose(1, 2, 3, 0)  # (O, kh, kw, I) -> (kh, kw, I, O)
            bias = self.constant(b) if b >= 0 else np.zeros(kernel.shape[-1], np.float32)
            out[name] = (np.ascontiguousarray(kernel), bias, op)
        return out

    def head_role(self, op) -> str:
        """Follow a head conv's output through SQUEEZE/EXPAND_DIMS: scaling (MUL) is gamma, shifting (SUB) beta."""
        tensor = op["outputs"][0]
        for _ in range(8):
            users = self.consumers.get(tensor, [])
            kinds = {u["op_name"] for u in users}
            if kinds == {"MUL"}:
                return "gamma"
            if kinds == {"SUB"}:
                return "beta"
            if len(users) != 1 or users[0]["op_name"] not in ("SQUEEZE", "EXPAND_DIMS", "RESHAPE"):
                break
            tensor = users[0]["outputs"][0]
        return self.fail(f"cannot tell whether {self.tensors[op['outputs'][0]]['name']} is a gamma or a beta")


def _set(graph, variable, value, what: str):
    import jax.numpy as jnp

    value = np.asarray(value, np.float32)
    if tuple(variable.shape) != value.shape:
        graph.fail(f"{what}: file has shape {value.shape}, our network expects {tuple(variable.shape)}")
    variable.set_value(jnp.asarray(value))


def load_transformer(transformer, heads, path: Path) -> None:
    """Fill a float `Transformer` (any alpha matching the file) and its `CINHeads` from a TFLite transformer."""
    graph = TFLiteGraph(path, {"content_image": (1, 64, 64, 3)})  # any size that survives the 9x9 mirror pad
    convs = graph.convs()

    def conv(scope):
        if scope not in convs:
            graph.fail(f"no convolution {scope!r}")
        return convs[scope]

    contract = [(getattr(transformer, f"contract_conv{k}"), getattr(transformer, f"contract_bn{k}")) for k in (1, 2, 3)]
    for k, (module, bn) in enumerate(contract, start=1):
        kernel, bias, _ = conv(f"transformer/contract/conv{k}")
        _set(graph, module.conv.kernel, kernel, f"contract/conv{k}")
        _set(graph, bn.bias, bias, f"contract/conv{k} folded bias")
        _set(graph, bn.mean, np.zeros(bn.mean.shape), "folded batch norm mean")
        _set(graph, bn.var, np.full(bn.var.shape, 1.0 - BN_EPSILON), "folded batch norm variance")
    modules = {f"residual{i}/conv{j}": getattr(block, f"conv{j}")
               for i, block in enumerate(transformer.residual, start=1) for j in (1, 2)}
    modules.update({"expand/conv1": transformer.expand_conv1, "expand/conv2": transformer.expand_conv2,
                    "expand/conv3": transformer.expand_conv3})
    for name, _ in transformer.cin_layers:
        scope = f"transformer/residual/{name}" if name.startswith("residual") else f"transformer/{name}/conv"
        kernel, bias, _ = conv(scope)
        if np.any(bias):
            graph.fail(f"{scope} has a non-zero bias where Magenta's network has none")
        _set(graph, modules[name].conv.kernel, kernel, scope)
        for head_conv in ("Conv", "Conv_1"):
            kernel, bias, op = conv(f"style_params/{scope}/StyleNorm/{head_conv}")
            linear = getattr(heads.heads[heads.names.index(name)], graph.head_role(op))
            _set(graph, linear.kernel, kernel[0, 0], f"{scope} head {head_conv}")
            _set(graph, linear.bias, bias, f"{scope} head {head_conv} bias")
