"""Our FID features vs the TorchScript they were converted from, run by torch itself, on the same inputs.

torch is a benchmark-only tool here (never an arbstyle dependency); run this in a throwaway venv that has it:

    python -m venv ../torch-venv && ../torch-venv/bin/pip install -e . torch
    ../torch-venv/bin/python benchmarks/inception_torch_parity.py [--limit N]

Inputs: the ../shared/data/val/content photos through `arbstyle.evaluation.fid.fid_preprocess`; the same
(N, 299, 299, 3) arrays go to both networks (NCHW for torch). Also compares our TF1-style resize with the same sampling
written in torch (grid_sample at the TF1 source coordinates). Writes benchmarks/results/inception_torch_parity.
{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import arbstyle  # noqa: E402,F401
import jax  # noqa: E402
import numpy as np  # noqa: E402

from arbstyle.evaluation.fid import InceptionFeatures, fid_preprocess, resize_bilinear_tf1  # noqa: E402
from arbstyle.images import load_image  # noqa: E402
from arbstyle.paths import cache_dir, shared_dir  # noqa: E402
from arbstyle.weights import inception_fid  # noqa: E402
from results_io import write_results  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def import_torch():
    try:
        import torch
    except ImportError:
        sys.exit("this benchmark needs torch: pip install torch in a throwaway venv (see --help)")
    return torch


def torch_tf1_resize(image: np.ndarray, size: int) -> np.ndarray:
    """TF1 ResizeBilinear's sampling (source = dest * in/out, clamped) via grid_sample, to check ours against."""
    torch = import_torch()
    h, w, _ = image.shape
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
    ys = torch.arange(size, dtype=torch.float64) * (h / size)
    xs = torch.arange(size, dtype=torch.float64) * (w / size)
    # grid_sample(align_corners=True) maps -1..1 onto pixel centres 0..n-1
    gy = (ys / (h - 1)) * 2 - 1
    gx = (xs / (w - 1)) * 2 - 1
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)[None].float()
    out = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out[0].numpy().transpose(1, 2, 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N photos")
    args = parser.parse_args()
    torch = import_torch()
    shared = shared_dir()
    if shared is None:
        sys.exit("this benchmark needs ../shared/data/val/content")
    paths = sorted((shared / "data" / "val" / "content").glob("*.jpg"))
    if args.limit:
        paths = paths[: args.limit]
    pt = inception_fid.fetch_torchscript(cache_dir())
    images = [load_image(p) for p in paths]
    inputs = np.stack([fid_preprocess(im) for im in images])

    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    net = torch.jit.load(str(pt), map_location="cpu").eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        ref = np.concatenate([net(torch.from_numpy(inputs[i:i + 8].transpose(0, 3, 1, 2).copy())).numpy()
                              for i in range(0, len(inputs), 8)])
    torch_s = time.perf_counter() - t0

    feats = InceptionFeatures(batch_size=8)
    feats.features_of_inputs(inputs[:8])  # compile
    t0 = time.perf_counter()
    ours = feats.features_of_inputs(inputs)
    ours_s = time.perf_counter() - t0

    diff = np.abs(ours - ref)
    cos = np.sum(ours * ref, 1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(ref, axis=1))
    resize_diff = max(float(np.abs(resize_bilinear_tf1(im * 255, (299, 299)) - torch_tf1_resize(im * 255, 299)).max())
                      for im in images)
    result = {
        "command": "python benchmarks/inception_torch_parity.py"
                   + (f" --limit {args.limit}" if args.limit else ""),
        "images": len(paths), "torch": torch.__version__, "jax": jax.__version__,
        "machine": {"cpu": next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                                 if ln.startswith("model name")), "unknown"),
                    "python": platform.python_version(), "cores": len(os.sched_getaffinity(0))},
        "pool3_max_abs_diff": float(diff.max()), "pool3_mean_abs_diff": float(diff.mean()),
        "pool3_mean_abs_value": float(np.abs(ref).mean()),
        "pool3_max_rel_diff": float((diff.max(1) / np.abs(ref).max(1)).max()),
        "pool3_min_cosine": float(cos.min()),
        "resize_max_abs_diff_0_255": resize_diff,
        "seconds_torch": round(torch_s, 2), "seconds_ours": round(ours_s, 2),
        "note": "seconds are one pass each on a shared 2-core CPU, not a benchmark of speed",
    }
    md = ["# FID Inception: arbstyle (JAX) vs the TorchScript run by torch", "",
          f"Command: `{result['command']}` (in a venv with torch); {result['images']} photos from "
          "../shared/data/val/content, preprocessed once by `arbstyle.evaluation.fid.fid_preprocess`; "
          f"torch {result['torch']}, jax {result['jax']}, "
          f"{result['machine']['cpu']}.", "",
          "| figure | value |", "|---|---|"]
    for key in ["pool3_max_abs_diff", "pool3_mean_abs_diff", "pool3_mean_abs_value", "pool3_max_rel_diff",
                "pool3_min_cosine", "resize_max_abs_diff_0_255"]:
        md.append(f"| {key} | {result[key]:.3g} |")
    md += ["", "pool3: the 2048-d features. max_rel_diff: per image, max |diff| / max |feature|, worst image. "
           "resize: our TF1 ResizeBilinear vs the same sampling in torch's grid_sample, pixel units 0..255.", ""]
    write_results(RESULTS / "inception_torch_parity", result, "\n".join(md))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
