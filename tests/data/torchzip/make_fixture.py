"""Regenerate the torch archives that tests/test_torchzip.py reads (needs torch; run by hand, not by the tests).

    python -m venv ../torch-venv && ../torch-venv/bin/pip install torch numpy     # a throwaway venv
    ../torch-venv/bin/python tests/data/torchzip/make_fixture.py

Writes `checkpoint.pt` (torch.save of a nested dict: many dtypes, a transposed view, a slice with a storage
offset, two views of one storage), `script.pt` (torch.jit.save of a small scripted module) and `expected.npz`,
the arrays as torch itself returns them (names are the dotted paths torchzip.flatten gives).
"""
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, bias=False)
        self.bn = torch.nn.BatchNorm2d(4)
        self.register_buffer("table", torch.arange(6, dtype=torch.int32).reshape(2, 3))

    def forward(self, x):
        return self.bn(self.conv(x))


def main():
    torch.manual_seed(0)
    base = torch.randn(4, 6)
    shared = torch.arange(12, dtype=torch.float64)
    checkpoint = {
        "transposed": base.t(),
        "sliced": torch.arange(10, dtype=torch.int16)[3:8],
        "half": torch.randn(3, 2).half(),
        "bfloat16": torch.tensor([1.5, -2.25, 3.0], dtype=torch.bfloat16),
        "mask": torch.tensor([True, False, True]),
        "long": torch.tensor([-(2**40), 7], dtype=torch.int64),
        "uint8": torch.tensor([0, 255, 17], dtype=torch.uint8),
        "scalar": torch.tensor(3.25),
        "nested": [torch.ones(2), OrderedDict(view_a=shared[:6].view(2, 3), view_b=shared[6:])],
        "step": 12,
    }
    torch.save(checkpoint, HERE / "checkpoint.pt")

    module = Tiny().eval()
    with torch.no_grad():
        module.bn.running_mean.copy_(torch.randn(4))
    torch.jit.save(torch.jit.script(module), HERE / "script.pt")

    expected = {}
    for name in ["transposed", "sliced", "half", "mask", "long", "uint8", "scalar"]:
        expected[f"checkpoint/{name}"] = checkpoint[name].numpy()
    expected["checkpoint/bfloat16_as_f32"] = checkpoint["bfloat16"].float().numpy()
    expected["checkpoint/nested.0"] = checkpoint["nested"][0].numpy()
    expected["checkpoint/nested.1.view_a"] = checkpoint["nested"][1]["view_a"].numpy()
    expected["checkpoint/nested.1.view_b"] = checkpoint["nested"][1]["view_b"].numpy()
    for name, value in module.state_dict().items():
        expected[f"script/{name}"] = value.numpy()
    np.savez(HERE / "expected.npz", **expected)


if __name__ == "__main__":
    main()
