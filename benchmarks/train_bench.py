"""Training throughput on this CPU: arbstyle's jitted train step vs an equivalent PyTorch step, same run, interleaved.

    python benchmarks/train_bench.py                  # 128 and 256 px, batch 8 (tens of minutes on 2 cores)
    python benchmarks/train_bench.py --quick          # 64 px, batch 2, 2 timed steps: checks the script runs

What is timed (one optimizer step, wall time, median of --steps timed steps after one warm-up step):

* table (JAX vs PyTorch): the full-width transformer (alpha 1.0) with a learned CIN table of 8 styles (Dumoulin et
  al.; the transformer is the one the arbitrary model uses), VGG-16 perceptual loss with the calibrated LossConfig
  defaults (content relu3_3; style Gram matrices at relu1_2/2_2/3_3/4_3 of each sample's own style image, average
  pooling; total variation), Adam 1e-5, batch-norm in training mode. JAX runs `arbstyle.training.train.make_train_step`
  under jit on a one-device mesh, exactly what `arbstyle train` runs; PyTorch runs the same network written with
  torch.nn.functional, initialised with the same weights (the first step's losses are compared: they must agree).
* arbitrary (JAX only): the same plus the Inception-v3 style predictor (to Mixed_6e) trained end to end, i.e. the
  ghiasi2017 step. The PyTorch side has no Inception here, so this row is JAX alone.

The two engines alternate step by step, so both see the same machine load (this machine is shared: the load average
is recorded). torch is a benchmark-only dependency, never arbstyle's: run this in a throwaway venv that has it,

    python -m venv ../torch-venv && ../torch-venv/bin/pip install -e . torch
    ../torch-venv/bin/python benchmarks/train_bench.py --quick
Results: benchmarks/results/train_bench.{json,md}.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# OpenMP's default active spin-waiting makes PyTorch 5-25x slower here when other processes compete for the cores
# (measured at 64 px: 0.72 s/step passive vs 4-17 s/step active with 2 threads); passive waiting is the fair setting
# on a shared machine. Must be set before torch loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import arbstyle  # noqa: E402,F401  (XLA flags before JAX)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from arbstyle import losses  # noqa: E402
from arbstyle.machine import describe, summary  # noqa: E402
from arbstyle.nets.transformer import cin_layer_names  # noqa: E402
from arbstyle.training import parallel  # noqa: E402
from arbstyle.training import train as trainer  # noqa: E402
from arbstyle.training.experiment import base_config  # noqa: E402
from results_io import write_results  # noqa: E402
from arbstyle.nets.vgg import CONV_NAMES, IMAGENET_MEAN, IMAGENET_STD, load_vgg16, vgg16_arrays  # noqa: E402

NUM_STYLES = 8
RESULTS = ROOT / "benchmarks" / "results"


def machine() -> dict:
    import torch

    return {**describe(packages=("torch",)), "torch_threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}


def real_batch(size: int, batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Content and style crops of scikit-image's photographs (timing only needs realistic values)."""
    import skimage

    from arbstyle import images

    folder = Path(skimage.__file__).parent / "data"
    names = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg", "ihc.png",
             "retina.jpg", "motorcycle_left.png"]
    pics = [images.load_image(folder / n) for n in names]
    rng = np.random.default_rng(seed)

    def crop(img):
        img = images.resize_short(img, size)
        y = rng.integers(0, img.shape[0] - size + 1)
        x = rng.integers(0, img.shape[1] - size + 1)
        return img[y:y + size, x:x + size]

    content = np.stack([crop(pics[i % len(pics)]) for i in range(batch)]).astype(np.float32)
    style = np.stack([crop(pics[(i + 3) % len(pics)]) for i in range(batch)]).astype(np.float32)
    ids = (np.arange(batch) % NUM_STYLES).astype(np.int32)
    return content, style, ids


# ---- JAX: the trainer's own step ----------------------------------------------------------------------------------
class JaxStep:
    def __init__(self, model_cfg: dict, loss_cfg: losses.LossConfig):
        mesh = parallel.make_mesh(1)
        model = trainer.init_model(model_cfg, seed=0)
        self.model_state = nnx.state(model)  # the initial weights, copied into PyTorch
        graphdef, _, keep, _, pieces = trainer.split_for_training(model)
        opt = ml_collections.ConfigDict(base_config().optimizer.to_dict())
        tx, schedule = trainer.make_optimizer(opt, 1000)
        state = dict(pieces, step=jnp.zeros((), jnp.int32), rng=jax.random.PRNGKey(0),
                     opt_state=tx.init(pieces["params"]))
        self.state = parallel.replicate(state, mesh)
        vgg_graphdef, vgg_state = nnx.split(load_vgg16(loss_cfg.pooling))
        self.vgg_state = parallel.replicate(vgg_state, mesh)
        self.mesh = mesh
        repl = parallel.replicated(mesh)
        self.fn = jax.jit(trainer.make_train_step(graphdef, vgg_graphdef, tx, schedule, loss_cfg, keep,
                                                  model_cfg["predictor"] != "table"),
                          in_shardings=(repl, repl, parallel.batch_sharding(mesh)), out_shardings=(repl, repl),
                          donate_argnums=(0,))
        self.compiled = None

    def compile(self, batch) -> float:
        start = time.perf_counter()
        self.compiled = self.fn.lower(self.state, self.vgg_state, self._put(batch)).compile()
        return time.perf_counter() - start

    def _put(self, batch):
        return parallel.global_batch(batch, self.mesh)

    def __call__(self, batch) -> tuple[float, float]:
        arrays = self._put(batch)
        jax.block_until_ready(arrays)
        start = time.perf_counter()
        self.state, metrics = self.compiled(self.state, self.vgg_state, arrays)
        loss = float(metrics["loss/total"])  # waits for the step
        return time.perf_counter() - start, loss


# ---- PyTorch: the same network and loss ---------------------------------------------------------------------------
class TorchStep:
    """Magenta's transformer + CIN table, VGG-16 loss and Adam in PyTorch, with the JAX model's initial weights."""

    def __init__(self, alpha: float, jax_state, loss_cfg: losses.LossConfig):
        import torch
        import torch.nn.functional as F

        self.torch, self.F = torch, F
        self.loss_cfg = loss_cfg
        s = nnx.to_pure_dict(jax_state)
        t = s["transformer"]

        def conv(w):  # HWIO -> OIHW
            return torch.nn.Parameter(torch.from_numpy(np.ascontiguousarray(np.asarray(w).transpose(3, 2, 0, 1))))

        p = {}
        for name in ("contract_conv1", "contract_conv2", "contract_conv3", "expand_conv1", "expand_conv2",
                     "expand_conv3"):
            p[name] = conv(t[name]["conv"]["kernel"])
        for i in range(5):
            for j in (1, 2):
                p[f"residual{i + 1}_conv{j}"] = conv(t["residual"][i][f"conv{j}"]["conv"]["kernel"])
        self.bn_stats = {}
        for i in (1, 2, 3):
            bn = t[f"contract_bn{i}"]
            p[f"contract_bn{i}"] = torch.nn.Parameter(torch.from_numpy(np.asarray(bn["bias"]).copy()))
            self.bn_stats[i] = (torch.from_numpy(np.asarray(bn["mean"]).copy()),
                                torch.from_numpy(np.asarray(bn["var"]).copy()))
        for name in cin_layer_names():
            key = name.replace("/", "_")
            p[f"gamma_{key}"] = torch.nn.Parameter(torch.from_numpy(np.asarray(s["table"]["gamma"][key]).copy()))
            p[f"beta_{key}"] = torch.nn.Parameter(torch.from_numpy(np.asarray(s["table"]["beta"][key]).copy()))
        self.params = p
        self.opt = torch.optim.Adam(p.values(), lr=1e-5, betas=(0.9, 0.999), eps=1e-8)
        self.vgg = {name: (torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1))), torch.from_numpy(b.copy()))
                    for name, (k, b) in vgg16_arrays().items()}
        self.mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    def _conv(self, x, name, stride=1):
        w = self.params[name]
        pad = w.shape[-1] // 2
        return self.F.conv2d(self.F.pad(x, (pad, pad, pad, pad), mode="reflect"), w, stride=stride)

    def _bn(self, x, i):
        mean, var = self.bn_stats[i]
        return self.F.batch_norm(x, mean, var, None, self.params[f"contract_bn{i}"], training=True, momentum=0.01,
                                 eps=1e-3)

    def _cin(self, x, name, ids):
        key = name.replace("/", "_")
        mean = x.mean(dim=(2, 3), keepdim=True)
        var = ((x - mean) ** 2).mean(dim=(2, 3), keepdim=True)
        gamma = self.params[f"gamma_{key}"][ids][:, :, None, None]
        beta = self.params[f"beta_{key}"][ids][:, :, None, None]
        return (x - mean) * self.torch.rsqrt(var + 1e-5) * gamma + beta

    def transformer(self, x, ids):
        F = self.F
        y = F.relu(self._bn(self._conv(x, "contract_conv1"), 1))
        y = F.relu(self._bn(self._conv(y, "contract_conv2", 2), 2))
        y = F.relu(self._bn(self._conv(y, "contract_conv3", 2), 3))
        for i in range(1, 6):
            r = F.relu(self._cin(self._conv(y, f"residual{i}_conv1"), f"residual{i}/conv1", ids))
            y = y + self._cin(self._conv(r, f"residual{i}_conv2"), f"residual{i}/conv2", ids)
        y = F.relu(self._cin(self._conv(F.interpolate(y, scale_factor=2, mode="nearest"), "expand_conv1"),
                             "expand/conv1", ids))
        y = F.relu(self._cin(self._conv(F.interpolate(y, scale_factor=2, mode="nearest"), "expand_conv2"),
                             "expand/conv2", ids))
        return self.torch.sigmoid(self._cin(self._conv(y, "expand_conv3"), "expand/conv3", ids))

    def features(self, x, layers):
        F = self.F
        x = (x - self.mean) / self.std
        deepest = max(CONV_NAMES.index(n.replace("relu", "conv")) for n in layers)
        out = {}
        for i, name in enumerate(CONV_NAMES[: deepest + 1]):
            if i > 0 and name.endswith("_1"):
                x = F.avg_pool2d(x, 2) if self.loss_cfg.pooling == "avg" else F.max_pool2d(x, 2)
            w, b = self.vgg[name]
            x = F.relu(F.conv2d(x, w, b, padding=1))
            relu = name.replace("conv", "relu")
            if relu in layers:
                out[relu] = x
        return out

    @staticmethod
    def gram(f):
        b, c, h, w = f.shape
        flat = f.reshape(b, c, h * w)
        return flat @ flat.transpose(1, 2) / (h * w)

    def __call__(self, batch) -> tuple[float, float]:
        torch = self.torch
        content = torch.from_numpy(batch["content"]).permute(0, 3, 1, 2).contiguous()
        style = torch.from_numpy(batch["style"]).permute(0, 3, 1, 2).contiguous()
        ids = torch.from_numpy(batch["style_id"]).long()
        cfg = self.loss_cfg
        start = time.perf_counter()
        with torch.no_grad():
            content_feats = self.features(content, list(cfg.content))
            grams = {k: self.gram(v) for k, v in self.features(style, list(cfg.style)).items()}
        stylized = self.transformer(content, ids)
        feats = self.features(stylized, cfg.layers)
        loss = sum(w * ((feats[k] - content_feats[k]) ** 2).mean() for k, w in cfg.content.items())
        loss = loss + sum(w * ((self.gram(feats[k]) - grams[k]) ** 2).mean() for k, w in cfg.style.items())
        dy = stylized[:, :, 1:] - stylized[:, :, :-1]
        dx = stylized[:, :, :, 1:] - stylized[:, :, :, :-1]
        tv = (0.5 * ((dy ** 2).mean(dim=(1, 2, 3)) + (dx ** 2).mean(dim=(1, 2, 3)))).mean()
        loss = loss + cfg.tv_weight * tv
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return time.perf_counter() - start, float(loss.detach())


def run(sizes, batch: int, steps: int, arbitrary: bool, save=None) -> dict:
    loss_cfg = losses.LossConfig()
    rows = []
    for size in sizes:
        if save is not None and rows:
            save({"rows": rows})  # what is measured so far survives an interrupted run
        content, style, ids = real_batch(size, batch)
        data = {"content": content, "style": style, "style_id": ids}
        table_cfg = {"predictor": "table", "alpha": 1.0, "num_styles": NUM_STYLES}
        jx = JaxStep(table_cfg, loss_cfg)
        compile_s = jx.compile(data)
        th = TorchStep(1.0, jx.model_state, loss_cfg)
        # The first step of each, on identical weights and data: the losses must agree (same computation).
        jax_first, jax_loss = jx(data)
        torch_first, torch_loss = th(data)
        times = {"jax": [], "torch": []}
        for _ in range(steps):
            times["jax"].append(jx(data)[0])
            times["torch"].append(th(data)[0])
        for engine in ("jax", "torch"):
            med = statistics.median(times[engine])
            rows.append({"workload": "table", "engine": engine, "size": size, "batch": batch,
                         "step_seconds_median": med, "step_seconds": times[engine],
                         "images_per_second": batch / med,
                         "first_step_seconds": jax_first if engine == "jax" else torch_first,
                         "compile_seconds": compile_s if engine == "jax" else None,
                         "first_step_loss": jax_loss if engine == "jax" else torch_loss})
        rel = abs(jax_loss - torch_loss) / abs(torch_loss)
        print(f"{size}px table: jax {batch / statistics.median(times['jax']):.3f} img/s, torch "
              f"{batch / statistics.median(times['torch']):.3f} img/s; first-step loss jax {jax_loss:.6g} torch "
              f"{torch_loss:.6g} (rel diff {rel:.1e})", flush=True)
        del jx, th
        if arbitrary:
            arb = JaxStep({"predictor": "inception", "alpha": 1.0}, loss_cfg)
            compile_s = arb.compile(data)
            first, loss = arb(data)
            t = [arb(data)[0] for _ in range(steps)]
            med = statistics.median(t)
            rows.append({"workload": "arbitrary", "engine": "jax", "size": size, "batch": batch,
                         "step_seconds_median": med, "step_seconds": t, "images_per_second": batch / med,
                         "first_step_seconds": first, "compile_seconds": compile_s, "first_step_loss": loss})
            print(f"{size}px arbitrary (Inception predictor): jax {batch / med:.3f} img/s", flush=True)
            del arb
    return {"rows": rows}


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        "# Training throughput on CPU: arbstyle (JAX) vs an equivalent PyTorch step",
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {summary(m)}; load average {result['load_average'][0]:.1f} at the start, "
        f"{result['load_average_end'][0]:.1f} at the end; torch {m['torch_threads']} threads, "
        f"OMP_WAIT_POLICY={m['omp_wait_policy']}.",
        "",
        "One optimizer step (forward, VGG-16 perceptual loss, backward, Adam) per timing; median of "
        f"{result['steps']} timed steps after a warm-up step, JAX and PyTorch alternating step by step.",
        "",
        "| workload | size | batch | engine | images/s | s/step (median) | first step s | compile s | first-step loss |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        comp = f"{r['compile_seconds']:.1f}" if r["compile_seconds"] is not None else "-"
        lines.append(f"| {r['workload']} | {r['size']} | {r['batch']} | {r['engine']} | {r['images_per_second']:.3f} | "
                     f"{r['step_seconds_median']:.2f} | {r['first_step_seconds']:.2f} | {comp} | "
                     f"{r['first_step_loss']:.6g} |")
    lines += [
        "",
        "`table`: full-width transformer + 8-style CIN table, identical weights and inputs in both engines (the "
        "first-step losses above are the same computation in each). `arbitrary`: plus the Inception-v3 predictor "
        "(to Mixed_6e) trained end to end, as in experiments/ghiasi2017.py; JAX only.",
        "",
        "On a GPU: benchmarks/results/gpu_session.md (training images/s at 256 px, batch 32, on an H200, with the "
        "fraction of bf16 peak). Where the time of a step goes: benchmarks/results/train_profile.md.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per engine and size")
    parser.add_argument("--no-arbitrary", action="store_true", help="skip the JAX-only Inception-predictor rows")
    parser.add_argument("--quick", action="store_true", help="64 px, batch 2, 2 steps; results not written")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.batch, args.steps = [64], 2, 2
    try:
        import torch  # noqa: F401
    except ImportError:
        sys.exit("this benchmark needs torch: pip install torch in a throwaway venv (see --help)")
    load = os.getloadavg()
    info = {"machine": machine(), "load_average": load, "steps": args.steps,
            "command": "python benchmarks/train_bench.py " + " ".join(sys.argv[1:])}

    def save(result: dict) -> str:
        result.update(info, load_average_end=os.getloadavg())
        if not args.quick:
            write_results(RESULTS / "train_bench", result, markdown(result))
        return markdown(result)

    print(save(run(args.sizes, args.batch, args.steps, not args.no_arbitrary, save)))


if __name__ == "__main__":
    main()
