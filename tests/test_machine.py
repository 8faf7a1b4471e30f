"""The machine description stored beside every benchmark and evaluation figure."""
import json
import os
import time

import numpy as np
import pytest

from arbstyle import machine


def test_describe_names_this_machine_and_is_json():
    info = json.loads(json.dumps(machine.describe(packages=("numpy", "no-such-package-xyz"))))
    assert info["logical_cores"] == os.cpu_count()
    assert 1 <= info["usable_cores"] <= os.cpu_count()
    assert info["backend"] == "cpu" and info["devices"]
    assert "jax" in info["versions"] and "no-such-package-xyz" not in info["versions"]
    assert len(info["load_average_1_5_15min"]) == 3
    assert info["cpu"]


def test_summary_is_one_line_naming_cpu_cores_and_jax():
    info = machine.describe()
    line = machine.summary(info)
    assert "\n" not in line
    assert info["cpu"] in line and f"{info['usable_cores']} usable cores" in line
    assert f"jax {info['versions']['jax']}" in line


def test_int8_products_are_exact_says_what_onnxruntime_computes():
    """A 1x1 QLinearConv whose uint8 x int8 products overflow int16 in pairs: onnxruntime returns the exact sum
    where int8_products_are_exact() says so, and the pairwise-saturated one elsewhere."""
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    channels, y_scale = 64, 10363.2
    x = np.full((1, channels, 2, 2), 255, np.uint8)
    scalars = {"xs": np.float32(1), "xz": np.uint8(0), "ws": np.float32(1), "wz": np.int8(0),
               "ys": np.float32(y_scale), "yz": np.uint8(0)}
    weights = [numpy_helper.from_array(np.full((4, channels, 1, 1), 127, np.int8), "w")]
    weights += [numpy_helper.from_array(np.array(v), k) for k, v in scalars.items()]
    node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"])
    graph = helper.make_graph([node], "saturation", [helper.make_tensor_value_info("x", TensorProto.UINT8, x.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, None)], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = set(session.run(None, {"x": x})[0].ravel().tolist())
    exact = round(255 * 127 * channels / y_scale)  # 200
    saturated = round(32767 * (channels // 2) / y_scale)  # each pair of products clipped to int16: 101
    assert got == ({exact} if machine.int8_products_are_exact() else {saturated})


def test_settled_load_average_waits_for_the_threshold_but_no_longer_than_its_timeout():
    start = time.monotonic()
    assert len(machine.settled_load_average(threshold=1e9, timeout=60)) == 3  # already under: no wait
    assert time.monotonic() - start < 1
    start = time.monotonic()
    load = machine.settled_load_average(threshold=0.0, timeout=0.5)  # a load average is never below 0
    assert load[0] >= 0.0 and 0.5 <= time.monotonic() - start < 15
