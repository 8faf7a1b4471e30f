"""The machine description stored beside every benchmark and evaluation figure."""
import json
import os

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
