"""One GPU session, prepared on the CPU: speed figures on the GPU and a fine-tune of `ghiasi-inception` there.

A GPU is lent to this project only now and then, for minutes, on a machine that reaches nothing outside it and takes
at most 64 MiB of files. So the work is split in two:

    python benchmarks/gpu_session.py pack --out .gpu          # here: the files the GPU needs (~45 MB)
    python benchmarks/gpu_session.py run --assets .gpu --out OUT --train-seconds 300   # there
    python benchmarks/gpu_session.py run --assets .gpu --out /tmp/smoke --smoke       # here: the same path, tiny
    python benchmarks/gpu_session.py report OUT/results.json     # here: benchmarks/results/gpu_session.{json,md}

`pack` writes what the frozen parts of the model would otherwise need hundreds of MB for:

- `model.npz`: `ghiasi-inception` without its Inception-v3 trunk (bottleneck, CIN heads, transformer; float32).
- `vgg16.npz`: the loss network's convolutions conv1_1 .. conv4_3 (the deepest layer the losses use), float16.
- `data.npz`: training styles (paintings and textures) and photos from ../shared/data/train as 256 x 256 centre
  crops, JPEG bytes; the frozen trunk's pooled Mixed_6e features of every style and of its mirror image, computed
  here with the real `inception-v3` weights, so the GPU never needs the trunk; and held-out pairs (styles and photos
  not in the training subset) for the held-out loss.

`run` (on the GPU):

1. Fine-tune (below), first, so that a run cut short by its time limit loses timings rather than weights.
2. Speed: stylization (style embedding at 256 px + transformer) at 1024 and 4096 px, float32 and bfloat16; the
   transformer alone on video frames at 480p and 1080p; `arbstyle train`'s own jitted step
   (`arbstyle.training.train.make_train_step`) for `experiments/ghiasi2017.py`'s model at 256 px, batch 32, bf16,
   trunk trained; and the fine-tune step below. FLOPs per step come from XLA's cost analysis of the compiled step;
   the fraction of peak is against the H200's dense bf16 figure (989 TFLOP/s). The trunk's weights are random
   here (the timings do not depend on the values).
3. The fine-tune: Ghiasi et al.'s second stage as far as this budget allows: bottleneck, CIN heads and transformer
   trained end to end through the perceptual losses (`arbstyle.losses`, VGG-16 in float32), the ImageNet trunk
   frozen (its features precomputed, above), bf16 convolutions in the transformer, batch 32, 256 px, Adam with
   warm-up and cosine decay. One run per style weight in --style-weights, each --train-seconds / len long; the
   images sit on the GPU and each step draws its pairs and mirror flips there. Each run's weights come back as an
   npz in `arbstyle weights export`'s layout (no trunk), ready to be the package's `ghiasi_inception.npz`.

Everything goes to --out: results.json (rewritten after each part, so a run cut short still reports), log.txt,
and finetune_sw<weight>.npz per run.
"""
from __future__ import annotations

import argparse
import functools
import io
import json
import logging
import sys
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

log = logging.getLogger("gpu_session")

SIZE = 256
VGG_CONVS = ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
             "conv4_1", "conv4_2", "conv4_3")
H200_BF16_DENSE_FLOPS = 989e12
GHIASI = {"predictor": "inception", "alpha": 0.25, "trunk": {"final_endpoint": "Mixed_6e"}}


# ---- pack (on the CPU, with ../shared) -------------------------------------------------------------------------------
def _jpeg_square(path: Path, quality: int) -> bytes:
    from PIL import Image

    from arbstyle import images

    square = images.resize_to(images.center_square(images.load_image(path)), (SIZE, SIZE))
    buf = io.BytesIO()
    Image.fromarray(images.to_uint8(square)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _packed(blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    return np.frombuffer(b"".join(blobs), np.uint8), offsets


def _unpacked(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.open(io.BytesIO(data[a:b].tobytes())).convert("RGB"))
                     for a, b in zip(offsets[:-1], offsets[1:])])


def pack(args) -> None:
    import jax
    from flax import nnx

    from arbstyle.inference.stylize_cli import expand_inputs
    from arbstyle.nets.vgg import vgg16_arrays
    from arbstyle.paths import shared_dir
    from arbstyle.weights import bundled
    from arbstyle.weights.registry import load_model

    shared = shared_dir()
    if shared is None:
        raise SystemExit("pack needs ../shared/data")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model("ghiasi-inception")
    np.savez(out / "model.npz", **bundled.model_arrays(model))
    np.savez(out / "vgg16.npz", **{f"{n}/{i}": a.astype(np.float16)
                                    for n, pair in vgg16_arrays().items() if n in VGG_CONVS
                                    for i, a in zip(("kernel", "bias"), pair)})

    rng = np.random.default_rng(args.seed)
    train = shared / "data" / "train"

    def pick(folders, count):
        files = expand_inputs([str(train / d) for d in folders], "image")
        return [files[i] for i in rng.permutation(len(files))[:count]]

    styles = pick(("paintings", "textures"), args.styles + args.held_out)
    contents = pick(("content",), args.contents + args.held_out)
    features = nnx.jit(lambda m, x: m.predictor.features(x))
    arrays = {}
    for name, files in (("style", styles), ("content", contents)):
        blobs = []
        for i, f in enumerate(files):
            blobs.append(_jpeg_square(f, args.quality))
            if i % 200 == 0:
                print(f"{name}: {i}/{len(files)}", flush=True)
        arrays[f"{name}_jpeg"], arrays[f"{name}_offsets"] = _packed(blobs)
    decoded = _unpacked(arrays["style_jpeg"], arrays["style_offsets"])
    feats = []
    for a in range(0, len(decoded), 32):
        x = jax.numpy.asarray(decoded[a:a + 32], jax.numpy.float32) / 255.0
        feats.append(np.stack([np.asarray(features(model, x)), np.asarray(features(model, x[:, :, ::-1]))], 1))
        print(f"features: {a + len(x)}/{len(decoded)}", flush=True)
    arrays["style_features"] = np.concatenate(feats).astype(np.float32)
    arrays["held_out"] = np.int64(args.held_out)
    np.savez(out / "data.npz", **arrays)
    sizes = {p.name: round(p.stat().st_size / 1e6, 2) for p in sorted(out.iterdir())}
    print(json.dumps(sizes))


# ---- run (on the GPU) -----------------------------------------------------------------------------------------------
class Results:
    def __init__(self, out: Path):
        self.path, self.data = out / "results.json", {}

    def put(self, key: str, value) -> None:
        self.data[key] = value
        self.path.write_text(json.dumps(self.data, indent=1))
        log.info("%s: %s", key, json.dumps(value)[:2000])


def _timed(fn, *args, runs: int = 10) -> dict:
    import jax

    jax.block_until_ready(fn(*args))  # compile
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return {"median_s": float(np.median(times)), "min_s": float(np.min(times)), "runs": runs}


def _flops(jitted, *args) -> float | None:
    try:
        cost = jitted.lower(*args).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        return float(cost["flops"])
    except Exception:  # cost analysis is best-effort per backend
        return None


def _ghiasi_model(assets: Path, seed: int = 0):
    from arbstyle.model import build_model
    from arbstyle.weights.pretrained import fill_module

    model = build_model(GHIASI, seed=seed)
    with np.load(assets / "model.npz") as z:
        arrays = {k: z[k] for k in z.files}
    for prefix, part in (("transformer/", model.transformer), ("heads/", model.heads),
                         ("predictor/bottleneck/", model.predictor.bottleneck)):
        fill_module(part, arrays, prefix=prefix, what="ghiasi-inception")
    model.eval()
    return model


def _vgg(assets: Path):
    from arbstyle.nets.vgg import CONV_NAMES, VGG16

    with np.load(assets / "vgg16.npz") as z:
        weights = {n: (z[f"{n}/kernel"].astype(np.float32), z[f"{n}/bias"].astype(np.float32)) for n in VGG_CONVS}
    cin = weights["conv4_3"][0].shape[-1]
    for n in CONV_NAMES[len(VGG_CONVS):]:  # conv5_*: never reached by the losses' layers
        weights[n] = (np.zeros((3, 3, cin, 512), np.float32), np.zeros((512,), np.float32))
    return VGG16("avg", weights=weights)


def bench_stylize(assets: Path, results: Results, sizes, video, runs: int) -> None:
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from arbstyle.training.train import use_bf16

    rows = []
    for dtype in ("float32", "bfloat16"):
        model = _ghiasi_model(assets)
        if dtype == "bfloat16":
            use_bf16(model)
        # jax.jit over the split state, as arbstyle's Stylizer runs it: nnx.jit re-walks the module graph on every
        # call, tens of milliseconds of Python that would hide the GPU's time.
        graphdef, state = nnx.split(model)
        stylize = jax.jit(lambda st, c, s: (lambda m: m.stylize(c, m.embed(s)))(nnx.merge(graphdef, st)))
        transform = jax.jit(lambda st, c, e: nnx.merge(graphdef, st).stylize(c, e))
        style = jnp.asarray(np.random.default_rng(0).random((1, SIZE, SIZE, 3), np.float32))
        emb = model.embed(style)
        for side in sizes:
            content = jnp.asarray(np.random.default_rng(1).random((1, side, side, 3), np.float32))
            rows.append({"what": f"stylize {side}x{side} (embed 256 + transformer)", "dtype": dtype,
                         **_timed(stylize, state, content, style, runs=runs)})
            rows.append({"what": f"transformer {side}x{side}", "dtype": dtype,
                         **_timed(transform, state, content, emb, runs=runs)})
            results.put("stylize", rows)
        for name, (h, w), batch in video:
            frames = jnp.asarray(np.random.default_rng(2).random((batch, h, w, 3), np.float32))
            t = _timed(transform, state, frames, jnp.repeat(emb, batch, 0), runs=runs)
            rows.append({"what": f"transformer on {name} frames ({w}x{h}), batch {batch}", "dtype": dtype, **t,
                         "frames_per_s": batch / t["median_s"]})
            results.put("stylize", rows)
        del model


def bench_train_step(results: Results, batch: int, size: int, steps: int) -> None:
    """`arbstyle train`'s step for experiments/ghiasi2017.py's model (Inception trunk trained with the rest), bf16.

    The model, loss and optimizer of that config, built here without reading the config file, whose data section
    needs TFDS (not on the GPU machine)."""
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from arbstyle import losses
    from arbstyle.nets.vgg import VGG16
    from arbstyle.training import train as trainer

    model_cfg = {"predictor": "inception", "alpha": 1.0, "trunk": {"final_endpoint": "Mixed_6e"}}
    model = trainer.init_model(model_cfg, 0)
    trainer.use_bf16(model)
    freeze = ()
    graphdef, _, keep, _, pieces = trainer.split_for_training(model, freeze)
    schedule = optax.constant_schedule(1e-5)
    tx = optax.adam(schedule)
    state = dict(pieces, step=jnp.zeros((), jnp.int32), rng=jax.random.PRNGKey(0), opt_state=tx.init(pieces["params"]))
    vgg_graphdef, vgg_state = nnx.split(VGG16("avg"))  # random weights: the step's cost does not depend on them
    step = jax.jit(trainer.make_train_step(graphdef, vgg_graphdef, tx, schedule, losses.LossConfig(), keep, True, 0),
                   donate_argnums=(0,))
    style_size = size
    rng = np.random.default_rng(0)
    batch_arrays = {"content": jnp.asarray(rng.random((batch, size, size, 3), np.float32)),
                    "style": jnp.asarray(rng.random((batch, style_size, style_size, 3), np.float32))}
    flops = _flops(step, state, vgg_state, batch_arrays)
    state, m = step(state, vgg_state, batch_arrays)
    jax.block_until_ready(m)
    t = time.perf_counter()
    for _ in range(steps):
        state, m = step(state, vgg_state, batch_arrays)
    jax.block_until_ready(m)
    seconds = (time.perf_counter() - t) / steps
    row = {"config": "experiments/ghiasi2017.py", "model": model_cfg, "freeze": list(freeze), "batch": batch,
           "size": size, "style_size": style_size, "bf16": True, "step_s": seconds,
           "images_per_s": batch / seconds, "flops_per_step": flops,
           "fraction_of_bf16_peak": (flops / seconds / H200_BF16_DENSE_FLOPS) if flops else None,
           "params": sum(int(np.prod(x.shape)) for x in jax.tree.leaves(pieces["params"]))}
    results.put("train_step_ghiasi2017", row)


def finetune(assets: Path, out: Path, results: Results, *, style_weight: float, seconds: float, batch: int,
             lr: float, warmup: int, seed: int, smoke: bool) -> None:
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from arbstyle import losses
    from arbstyle.training.train import style_grams, trainable_filter, use_bf16
    from arbstyle.weights import bundled

    with np.load(assets / "data.npz") as z:
        d = {k: z[k] for k in z.files}
    held = int(d["held_out"])
    styles = _unpacked(d["style_jpeg"], d["style_offsets"])
    contents = _unpacked(d["content_jpeg"], d["content_offsets"])
    feats = d["style_features"]
    if smoke:
        styles, contents = styles[:, ::4, ::4], contents[:, ::4, ::4]
    train_styles, train_feats = jnp.asarray(styles[held:]), jnp.asarray(feats[held:])
    train_contents = jnp.asarray(contents[held:])
    val = {"content": jnp.asarray(contents[:held], jnp.float32) / 255.0,
           "style": jnp.asarray(styles[:held], jnp.float32) / 255.0, "features": jnp.asarray(feats[:held, 0])}

    freeze = ("predictor/trunk",)
    model = _ghiasi_model(assets)
    use_bf16(model)
    # Batch norm (the transformer's contracting layers) keeps its running statistics: at batch 32 of one
    # fine-tune, their per-batch estimates would only add noise to what magenta-mobile's training settled.
    model.eval()
    keep = trainable_filter(freeze)
    graphdef, params, rest = nnx.split(model, keep, ...)
    vgg_graphdef, vgg_state = nnx.split(_vgg(assets))
    cfg = losses.LossConfig(style_weight=style_weight)
    style_layers = [k for k, _ in cfg.style_layers]
    content_layers = [k for k, _ in cfg.content_layers]

    def stylized_loss(params, fixed, content, style, features):
        m = nnx.merge(graphdef, params, fixed["rest"])
        vgg = nnx.merge(vgg_graphdef, fixed["vgg"])
        out = m.stylize(content, m.predictor.bottleneck(features))
        grams = style_grams(vgg, style, style_layers)
        return losses.perceptual_loss(vgg, out, vgg(content, content_layers), grams, cfg)

    # Everything the step reads is an argument: arrays closed over would be compiled in as constants.
    fixed = {"rest": rest, "vgg": vgg_state}
    pool = {"contents": train_contents, "styles": train_styles, "features": train_feats}
    step_time = _probe_step_time(stylized_loss, params, fixed, pool, batch)
    total = max(int(seconds / step_time), warmup + 1) if not smoke else 3
    schedule = optax.warmup_cosine_decay_schedule(0.0, lr, min(warmup, total - 1), total)
    tx = optax.adam(schedule)
    opt_state = tx.init(params)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(params, opt_state, key, fixed, pool):
        kc, ks, kf, kg = jax.random.split(key, 4)
        ci = jax.random.randint(kc, (batch,), 0, pool["contents"].shape[0])
        si = jax.random.randint(ks, (batch,), 0, pool["styles"].shape[0])
        flip_c, flip_s = jax.random.bernoulli(kf, 0.5, (batch,)), jax.random.bernoulli(kg, 0.5, (batch,))
        content = pool["contents"][ci].astype(jnp.float32) / 255.0
        content = jnp.where(flip_c[:, None, None, None], content[:, :, ::-1], content)
        style = pool["styles"][si].astype(jnp.float32) / 255.0  # a Gram matrix is the same for the mirror image
        features = pool["features"][si, flip_s.astype(jnp.int32)]
        (_, parts), grads = jax.value_and_grad(stylized_loss, has_aux=True)(params, fixed, content, style, features)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, parts

    evaluate = jax.jit(lambda p, fixed, val: stylized_loss(p, fixed, val["content"], val["style"], val["features"])[1])

    def held_out(p) -> dict:
        parts = evaluate(p, fixed, val)
        return {k: float(parts[k]) for k in ("total", "content", "style", "tv")}

    flops = _flops(step, params, opt_state, jax.random.PRNGKey(0), fixed, pool)
    curve = [{"step": 0, **held_out(params)}]
    train_log = []
    key = jax.random.PRNGKey(seed)
    start = time.perf_counter()
    window = []
    eval_every = max(total // 8, 1)
    for i in range(1, total + 1):
        params, opt_state, parts = step(params, opt_state, jax.random.fold_in(key, i), fixed, pool)
        window.append(parts)
        if i % 50 == 0 or i == total:
            host = jax.device_get(window)
            train_log.append({"step": i, "seconds": time.perf_counter() - start,
                              **{k: float(np.mean([p[k] for p in host])) for k in ("total", "content", "style")}})
            window = []
            log.info("sw %s step %d/%d %s", style_weight, i, total, train_log[-1])
        if i % eval_every == 0 or i == total:
            curve.append({"step": i, **held_out(params)})
    elapsed = time.perf_counter() - start
    steady = ((train_log[-1]["seconds"] - train_log[0]["seconds"]) / (train_log[-1]["step"] - train_log[0]["step"])
              if len(train_log) > 1 else None)  # from the first logged step on: compilation excluded
    model = nnx.merge(graphdef, params, rest)
    arrays = bundled.model_arrays(model)
    np.savez_compressed(out / f"finetune_sw{style_weight:g}.npz", **arrays)
    results.put(f"finetune_sw{style_weight:g}", {
        "style_weight": style_weight, "steps": total, "batch": batch, "size": int(train_contents.shape[1]),
        "lr": lr, "warmup": min(warmup, total - 1), "schedule": "warmup + cosine to 0", "seconds": elapsed,
        "images_per_s": total * batch / elapsed, "probe_step_s": step_time, "steady_step_s": steady,
        "steady_images_per_s": batch / steady if steady else None, "flops_per_step": flops,
        "fraction_of_bf16_peak": flops / steady / H200_BF16_DENSE_FLOPS if flops and steady else None,
        "train_styles": int(train_styles.shape[0]), "train_contents": int(train_contents.shape[0]),
        "held_out_pairs": held, "held_out": curve, "train": train_log})


def _probe_step_time(loss_fn, params, fixed, pool, batch: int) -> float:
    """Seconds per step of a plain gradient step of the same shapes (compiled, 5 steps): sizes the run to its budget."""
    import jax
    import jax.numpy as jnp

    @jax.jit
    def probe(params, fixed, pool):
        c = pool["contents"][:batch].astype(jnp.float32) / 255.0
        s = pool["styles"][:batch].astype(jnp.float32) / 255.0
        (_, parts), g = jax.value_and_grad(loss_fn, has_aux=True)(params, fixed, c, s, pool["features"][:batch, 0])
        return jax.tree.map(lambda p, q: p - 1e-9 * q, params, g), parts["total"]

    jax.block_until_ready(probe(params, fixed, pool))
    t = time.perf_counter()
    for _ in range(5):
        out = probe(params, fixed, pool)
    jax.block_until_ready(out)
    return (time.perf_counter() - t) / 5


def run(args) -> None:
    import jax

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        handlers=[logging.StreamHandler(sys.stdout), logging.FileHandler(out / "log.txt")])
    results = Results(out)
    results.put("machine", {"devices": [str(d) for d in jax.devices()], "jax": jax.__version__,
                            "device_kind": jax.devices()[0].device_kind})
    assets = Path(args.assets)
    smoke = args.smoke
    parts = []
    weights = [float(w) for w in args.style_weights.split(",") if w]
    for w in weights:
        parts.append((f"finetune sw {w:g}", lambda w=w: finetune(
            assets, out, results, style_weight=w, seconds=args.train_seconds / len(weights),
            batch=2 if smoke else args.batch, lr=args.lr, warmup=args.warmup, seed=args.seed, smoke=smoke)))
    if not args.skip_bench:  # after the fine-tune: a run cut short by its time limit loses timings, not weights
        sizes = (64,) if smoke else (1024, 4096)
        video = [("tiny", (32, 48), 2)] if smoke else [("480p", (480, 854), 8), ("1080p", (1080, 1920), 8)]
        parts.append(("stylize", lambda: bench_stylize(assets, results, sizes, video, 2 if smoke else 10)))
        parts.append(("train step", lambda: bench_train_step(results, 2 if smoke else args.batch,
                                                             64 if smoke else SIZE, 2 if smoke else 20)))
    for name, part in parts:
        t = time.perf_counter()
        try:
            part()
        except Exception:  # one failed part must not cost the others their device time
            log.error("%s failed:\n%s", name, traceback.format_exc())
            results.put(f"error {name}", traceback.format_exc()[-3000:])
        log.info("%s: %.1f s", name, time.perf_counter() - t)


# ---- report (on the CPU, from what came back) ------------------------------------------------------------------------
def report(args) -> None:
    from results_io import write_results

    merged = {}
    for path in args.results:  # later files add to (and replace parts of) earlier ones
        merged.update(json.loads(Path(path).read_text()))
    merged = {k: v for k, v in merged.items() if not k.startswith("error")}
    lines = ["# One GPU session: fine-tune of ghiasi-inception and timings", "",
             f"Commands: `python benchmarks/gpu_session.py pack --out .gpu {args.pack_args}` here, then on the GPU "
             f"`python benchmarks/gpu_session.py run {args.run_args}`; this page: "
             f"`python benchmarks/gpu_session.py report ...`.", "",
             f"Device: {merged['machine']['device_kind']}, jax {merged['machine']['jax']}. Peak for the fraction: "
             f"{H200_BF16_DENSE_FLOPS / 1e12:.0f} TFLOP/s (dense bf16); FLOPs per step from XLA's cost analysis.", ""]
    runs = [v for k, v in merged.items() if k.startswith("finetune_")]
    if runs:
        lines += ["## Fine-tune (bottleneck, CIN heads and transformer trained; trunk frozen)", "",
                  "| style weight | steps | batch | px | lr | s | images/s | GFLOP/step | fraction of bf16 peak | "
                  "held-out content (start -> end) | held-out style, weighted (start -> end) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in runs:
            a, b = r["held_out"][0], r["held_out"][-1]
            lines.append(f"| {r['style_weight']:g} | {r['steps']} | {r['batch']} | {r['size']} | {r['lr']:g} | "
                         f"{r['seconds']:.0f} | {r['steady_images_per_s']:.0f} | {r['flops_per_step'] / 1e9:.0f} | "
                         f"{r['fraction_of_bf16_peak']:.4f} | {a['content']:.3f} -> {b['content']:.3f} | "
                         f"{a['style']:.3f} -> {b['style']:.3f} |")
        lines += ["", f"Data: {runs[0]['train_styles']} training styles (paintings and textures) and "
                  f"{runs[0]['train_contents']} photos from ../shared/data/train, 256 px centre crops, mirror flips; "
                  f"held out: {runs[0]['held_out_pairs']} other pairs, at the step's loss (arbstyle.losses.LossConfig "
                  "with that style weight). images/s: steady state, compilation excluded.", ""]
    if merged.get("stylize"):
        lines += ["## Stylization on the GPU", "",
                  "One image, style embedding at 256 px included where it says so; median of 10 runs after 2 warm-ups; "
                  "jax.jit over the model's state.", "",
                  "| what | dtype | ms | (min) | frames/s |", "|---|---|---|---|---|"]
        for r in merged["stylize"]:
            fps = f"{r['frames_per_s']:.0f}" if "frames_per_s" in r else "-"
            lines.append(f"| {r['what']} | {r['dtype']} | {r['median_s'] * 1e3:.1f} | ({r['min_s'] * 1e3:.1f}) "
                         f"| {fps} |")
        lines.append("")
    if merged.get("train_step_ghiasi2017"):
        r = merged["train_step_ghiasi2017"]
        lines += ["## arbstyle train's step, experiments/ghiasi2017.py's model", "",
                  f"batch {r['batch']}, {r['size']} px, bf16: {r['images_per_s']:.0f} images/s, "
                  f"{r['fraction_of_bf16_peak']:.4f} of bf16 peak.", ""]
    if runs:
        _plot_curves(runs, Path(args.out).with_suffix(".png"))
        lines.insert(lines.index("## Stylization on the GPU") if merged.get("stylize") else len(lines),
                     f"![fine-tune curves]({Path(args.out).name}.png)\n")
    lines += args.note
    write_results(Path(args.out), merged, "\n".join(lines))


def _plot_curves(runs: list[dict], path: Path) -> None:
    """Training loss (per 50 steps) and held-out loss against step, one colour per style weight."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for r, colour in zip(runs, ("tab:blue", "tab:orange", "tab:green", "tab:red")):
        w = r["style_weight"]
        for ax, term in zip(axes, ("content", "style")):
            ax.plot([t["step"] for t in r["train"]], [t[term] for t in r["train"]], color=colour, alpha=0.3, lw=1)
            ax.plot([h["step"] for h in r["held_out"]], [h[term] for h in r["held_out"]], "o-", color=colour,
                    label=f"style weight {w:g}, held out")
    for ax, term in zip(axes, ("content loss", "style loss (weighted)")):
        ax.set_xlabel("step (batch 32, 256 px)")
        ax.set_ylabel(term)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("GPU fine-tune of ghiasi-inception: training loss (faint) and held-out loss (dots)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--out", default=".gpu")
    p.add_argument("--styles", type=int, default=1200)
    p.add_argument("--contents", type=int, default=700)
    p.add_argument("--held-out", type=int, default=16)
    p.add_argument("--quality", type=int, default=85)
    p.add_argument("--seed", type=int, default=0)
    r = sub.add_parser("run")
    r.add_argument("--assets", default=".gpu")
    r.add_argument("--out", required=True)
    r.add_argument("--train-seconds", type=float, default=300)
    r.add_argument("--style-weights", default="3,6")
    r.add_argument("--batch", type=int, default=32)
    r.add_argument("--lr", type=float, default=1e-4)
    r.add_argument("--warmup", type=int, default=100)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--skip-bench", action="store_true")
    r.add_argument("--smoke", action="store_true", help="tiny sizes and 3 steps: checks the path on a CPU")
    w = sub.add_parser("report")
    w.add_argument("results", nargs="+", help="results.json files from run, merged in order")
    w.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "gpu_session"))
    w.add_argument("--pack-args", default="")
    w.add_argument("--run-args", default="")
    w.add_argument("--note", action="append", default=[], help="a paragraph for the end of the page")
    args = parser.parse_args(argv)
    {"pack": pack, "run": run, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
