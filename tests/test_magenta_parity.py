"""Proof that the Magenta imports are Magenta's networks: agreement with the reference runtimes on real images.

More images and the README figures: `python benchmarks/magenta_parity.py`.
"""
import numpy as np
import pytest

from arbstyle.machine import int8_products_are_exact
from arbstyle.nets import qdq
from arbstyle.weights import magenta_parity as mp
from arbstyle.weights.registry import load_model

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("ai_edge_litert")
pytestmark = pytest.mark.shared
# Without VNNI, onnxruntime's own int8 products saturate (arbstyle.machine): it no longer runs the released graph.
needs_exact_onnxruntime = pytest.mark.skipif(
    not int8_products_are_exact(), reason="this CPU has no VNNI: onnxruntime's int8 convolutions saturate")


@pytest.fixture(scope="module")
def pair(shared):
    style = sorted((shared / "data/val/styles").iterdir())[0]
    content = sorted((shared / "data/val/content").iterdir())[0]
    return mp.square(style, mp.STYLE_SIZE), mp.square(content, mp.CONTENT_SIZE)


@pytest.fixture(scope="module")
def onnx_reference():
    return mp.OnnxReference()


def test_the_recorded_integer_kernels_are_onnxruntimes(tmp_path):
    """Exact mode follows onnxruntime's choice of integer kernels; if a new onnxruntime fuses differently, this
    says so before the parity figures drift."""
    choices = mp.onnxruntime_kernel_choices(tmp_path)
    assert choices["transformer"] == qdq.ORT_INTEGER_CONVS["transformer"]
    assert choices["mobilenet"] == qdq.ORT_INTEGER_CONVS["mobilenet"]
    assert choices["float_mean_scale"] == qdq.ORT_FLOAT_MEAN_SCALE


@needs_exact_onnxruntime
def test_exact_mode_matches_onnxruntime(pair, onnx_reference):
    figures = mp.compare(mp.Ours(load_model("magenta-mobile", quantize_activations=True)), onnx_reference, *pair)
    print("exact mode vs onnxruntime:", figures)
    assert figures["embedding_cosine"] >= 0.999
    assert figures["pixel_mean_abs"] <= 0.01
    assert figures["pixel_mean_abs_transformer"] <= 0.01


@needs_exact_onnxruntime
def test_float_mode_is_close_to_onnxruntime(pair, onnx_reference):
    """Float activations differ from the int8 graph by its quantization error: close, not exact."""
    figures = mp.compare(mp.Ours(load_model("magenta-mobile", quantize_activations=False)), onnx_reference, *pair)
    print("float mode vs onnxruntime:", figures)
    assert figures["embedding_cosine"] >= 0.99
    assert 0.0 < figures["pixel_mean_abs"] <= 0.1


def test_full_width_transformer_matches_tflite(shared):
    """Magenta's Inception model's transformer (alpha=1.0) and CIN heads, from its TFLite file, against the TFLite
    interpreter, for bottlenecks drawn with the spread of real embeddings."""
    reference = shared / "reference"
    styles = sorted((shared / "data/val/styles").iterdir())[:6]
    bottlenecks, sigma = mp.random_bottlenecks(reference, styles, count=2)
    content = mp.square(sorted((shared / "data/val/content").iterdir())[1], mp.CONTENT_SIZE)
    full = mp.FullWidth(reference)
    diffs = [float(np.abs(full.ours(content, b[None]) - full.reference(content, b[None])).mean()) for b in bottlenecks]
    print(f"full-width transformer vs TFLite (sigma {sigma:.3f}): mean abs {diffs}")
    assert max(diffs) <= 0.02
    # and the agreement is not an accident of a washed-out image: the styles differ from each other
    outs = [full.ours(content, b[None]) for b in bottlenecks]
    assert float(np.abs(outs[0] - outs[1]).mean()) > 5 * max(diffs)
