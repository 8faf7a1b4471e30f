"""Are the FID Inception weights read right? Activations on real photos must agree with the stored BN statistics.

    python benchmarks/inception_bn_check.py            # all ../shared/data/val/content photos
    python benchmarks/inception_bn_check.py --limit 8  # a quick look

For every one of the 94 BN layers of InceptionV3 (through Mixed_7c, 2015 FID graph weights), the pre-BN conv
outputs' per-channel means (and variances) over the photos, all positions, are correlated with the stored
moving means (variances), and the BN-normalised activations' mean (should be ~0) and std (~1) are reported.
Controls, measured the same way, show what the check can and cannot see:
  - `inputs_0_1`:       the photos scaled to [0, 1] instead of the graph's [-1, 1) (a preprocessing bug);
  - `permuted_stats`:   each layer's stored statistics in a random channel order (a mapping bug);
  - `kernels_hw_swapped`: every square kernel transposed H<->W (a layout bug the BN statistics cannot see,
                          since photos are statistically much the same transposed; benchmarks/
                          inception_torch_parity.py catches it instead).
Writes benchmarks/results/inception_bn_check.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import arbstyle  # noqa: E402,F401  (XLA CPU flag before JAX starts)
import numpy as np  # noqa: E402

from arbstyle.evaluation.fid import fid_preprocess  # noqa: E402
from arbstyle.images import load_image  # noqa: E402
from arbstyle.machine import describe, summary  # noqa: E402
from arbstyle.paths import cache_dir, shared_dir  # noqa: E402
from arbstyle.weights import inception_fid  # noqa: E402
from arbstyle.weights.pretrained import artifact  # noqa: E402
from results_io import write_results  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
THRESHOLD = 0.9


def summarise(rows: list[dict]) -> dict:
    corr = np.array([r["corr_mean"] for r in rows])

    def finite(value):  # controls that measure only means leave the other figures undefined: JSON null
        return float(value) if np.isfinite(value) else None

    return {"layers": len(rows), "fraction_corr_mean_above_0.9": float(np.mean(corr > THRESHOLD)),
            "median_corr_mean": float(np.median(corr)), "min_corr_mean": float(corr.min()),
            "median_corr_var": finite(np.median([r["corr_var"] for r in rows])),
            "mean_abs_normalised_mean": finite(np.mean([abs(r["normalised_mean"]) for r in rows])),
            "mean_normalised_std": finite(np.mean([r["normalised_std"] for r in rows]))}


def permuted(rows_stats, model, seed=0) -> list[dict]:
    """The same measured means against stored means in a random channel order."""
    rng = np.random.default_rng(seed)
    out = []
    for name, conv_bn in inception_fid._conv_bn_paths(model):
        mean, _ = rows_stats[name]
        stored = np.asarray(conv_bn.bn.mean[...], np.float64)
        out.append({"layer": name, "corr_mean": float(np.corrcoef(mean, rng.permutation(stored))[0, 1]),
                    "corr_var": float("nan"), "normalised_mean": float("nan"), "normalised_std": float("nan")})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=0, help="use only the first N photos (0: all)")
    parser.add_argument("--no-controls", action="store_true")
    args = parser.parse_args()
    shared = shared_dir()
    if shared is None:
        sys.exit("this benchmark needs ../shared/data/val/content")
    paths = sorted((shared / "data" / "val" / "content").glob("*.jpg"))
    if args.limit:
        paths = paths[: args.limit]
    arrays = inception_fid.convert(inception_fid.fetch_torchscript(cache_dir()))
    source = artifact("inception-v3").source
    inputs = np.stack([fid_preprocess(load_image(p)) for p in paths])
    model = inception_fid.build(arrays)

    start = time.perf_counter()
    stats = inception_fid.pre_bn_channel_stats(model, inputs, batch_size=8, progress=True)
    rows = inception_fid.bn_agreement(model, None, stats=stats)
    seconds = time.perf_counter() - start
    result = {"command": "python benchmarks/inception_bn_check.py" + (f" --limit {args.limit}" if args.limit else ""),
              "images": len(paths), "source": "../shared/data/val/content (all .jpg, sorted)",
              "preprocessing": "arbstyle.evaluation.fid.fid_preprocess (TF1 bilinear to 299, (x*255-128)/128)",
              "weights": f"{inception_fid.PACKAGE}:{source.member} sha256 {source.member_sha256}",
              "machine": describe(), "seconds": round(seconds, 1), "summary": summarise(rows), "layers": rows,
              "controls": {}}
    if not args.no_controls:
        result["controls"]["permuted_stats"] = summarise(permuted(stats, model))
        result["controls"]["inputs_0_1"] = summarise(inception_fid.bn_agreement(model, inputs * 0.5 + 0.5, 8))
        swapped = {k: (v.transpose(1, 0, 2, 3) if k.endswith("/kernel") and v.shape[0] == v.shape[1] else v)
                   for k, v in arrays.items()}
        result["controls"]["kernels_hw_swapped"] = summarise(
            inception_fid.bn_agreement(inception_fid.build(swapped), inputs, 8))

    write_results(RESULTS / "inception_bn_check", result, markdown(result))
    print(json.dumps(result["summary"], indent=1))
    print(json.dumps(result["controls"], indent=1))
    return 0


def markdown(result: dict) -> str:
    s = result["summary"]
    lines = [
        "# Inception-v3 (2015 FID graph) weights: activations vs stored BN statistics", "",
        f"Command: `{result['command']}` ({result['images']} photos from {result['source']}; "
        f"{result['seconds']} s). Machine: {summary(result['machine'])}.", "",
        f"Weights: `{result['weights']}`. Preprocessing: {result['preprocessing']}.", "",
        "Per BN layer: Pearson correlation over channels between the pre-BN conv outputs' per-channel means "
        "(over all photos and positions) and the stored moving means (`corr_mean`), the same for variances "
        "(`corr_var`), and the BN-normalised activations' per-channel mean and std averaged over channels "
        "(0 and 1 when the statistics fit).", "",
        f"**{s['fraction_corr_mean_above_0.9'] * 100:.0f}% of the {s['layers']} layers have corr_mean > 0.9** "
        f"(median {s['median_corr_mean']:.3f}, min {s['min_corr_mean']:.3f}); median corr_var "
        f"{s['median_corr_var']:.3f}; mean |normalised mean| {s['mean_abs_normalised_mean']:.3f}, "
        f"mean normalised std {s['mean_normalised_std']:.3f}.", "",
    ]
    if result["controls"]:
        lines += ["Controls (same photos, same measurement):", "",
                  "| control | layers corr_mean > 0.9 | median corr_mean | mean abs normalised mean | "
                  "mean normalised std |", "|---|---|---|---|---|"]
        for name, c in [("as loaded", s), *result["controls"].items()]:
            fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
            lines.append(f"| {name} | {c['fraction_corr_mean_above_0.9'] * 100:.0f}% | {c['median_corr_mean']:.3f} | "
                         f"{fmt(c['mean_abs_normalised_mean'])} | {fmt(c['mean_normalised_std'])} |")
        lines += ["", "What the check sees: `permuted_stats` (statistics attached to the wrong channels or layer) "
                  "collapses the correlation. What it barely sees: inputs in [0, 1] instead of [-1, 1) (lower minimum, "
                  "fewer layers above 0.9), and kernels transposed H<->W not at all (photos are statistically alike "
                  "transposed). Exactness is therefore proven separately: `benchmarks/inception_torch_parity.py` "
                  "compares our pool3 features with the TorchScript run by torch, and `benchmarks/"
                  "fid_resize_tf_check.py` our resize with TensorFlow's op.", ""]
    lines += ["| layer | channels | corr_mean | corr_var | normalised mean | normalised std |",
              "|---|---|---|---|---|---|"]
    for r in result["layers"]:
        lines.append(f"| {r['layer']} | {r['channels']} | {r['corr_mean']:.3f} | {r['corr_var']:.3f} | "
                     f"{r['normalised_mean']:+.3f} | {r['normalised_std']:.3f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
