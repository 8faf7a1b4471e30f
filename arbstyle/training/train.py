"""`arbstyle train`: train a style transfer model from an experiment config, data-parallel over every device.

    arbstyle train --config experiments/smoke.py --workdir runs/smoke [--config.train.steps=50 ...]

One path from disk to loss: `arbstyle.data.make_pipeline` (TFDS array_record + grain) gives each process its slice
of every global batch of (content, style) pairs; the slices become global arrays sharded on the mesh's 'data' axis;
one `jax.jit` step runs the model (Flax NNX) and the frozen VGG-16 loss network, and updates the replicated
parameters with Optax. Because the batch is one global array, XLA averages gradients and batch-norm statistics over
all devices and processes, so N devices compute what one device would with the same global batch.

The workdir layout (checkpoints, config.json, event files, sample grids) is documented in arbstyle.training.checkpoints
and docs/training.md. Restarting the same command resumes from the newest checkpoint: model, optimizer, step,
RNG and the data iterator's position.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx

import arbstyle
from arbstyle.cli import CLIError
from arbstyle.training import checkpoints, parallel

log = logging.getLogger("arbstyle.training.train")


class TrainingDiverged(CLIError):
    """The loss or gradients became NaN/inf; training stopped without saving the bad state."""


# ---- the model and what is trained --------------------------------------------------------------------------------
def _path_text(path) -> str:
    return "/".join(str(p) for p in path)


def _under(path_text: str, prefix: str) -> bool:
    prefix = prefix.strip("/")
    return path_text == prefix or path_text.startswith(prefix + "/")


def trainable_filter(freeze: tuple[str, ...]) -> Callable:
    """nnx filter: a Param outside every frozen prefix."""
    def keep(path, value) -> bool:
        return isinstance(value, nnx.Param) and not any(_under(_path_text(path), p) for p in freeze)
    return keep


def _submodule(model: nnx.Module, prefix: str):
    node = model
    for part in prefix.strip("/").split("/"):
        node = node[int(part)] if part.isdigit() and not hasattr(node, part) else getattr(node, part, None)
        if node is None:
            return None
    return node


def set_mode(model: nnx.Module, training: bool, freeze: tuple[str, ...] = ()) -> None:
    """Batch norm in training mode (batch statistics, running averages updated) except in frozen modules."""
    if training:
        model.train()
    else:
        model.eval()
    for prefix in freeze:
        sub = _submodule(model, prefix)
        if isinstance(sub, nnx.Module):
            sub.eval()


def use_bf16(model: nnx.Module) -> None:
    """bfloat16 compute in every convolution and dense layer (parameters stay float32; norms compute in float32)."""
    for _, module in nnx.iter_modules(model):
        if isinstance(module, (nnx.Conv, nnx.Linear)):
            module.dtype = jnp.bfloat16


def init_model(model_cfg: Mapping, seed: int) -> nnx.Module:
    """build_model(model_cfg, seed), initialised by one jitted program compiled without XLA's backend optimisations.

    Eagerly, every parameter shape compiles its own truncated-normal program: ~30 compiles, 12 s of CPU for the
    smoke model on this machine, against 4.5 s for this single unoptimised program. The values equal the eager
    ones to within 1 ulp (measured: max difference 6e-8), and are the same on every run and process.
    """
    from arbstyle.model import build_model

    graphdef, _ = nnx.split(nnx.eval_shape(lambda: build_model(model_cfg, seed=seed)))
    init = jax.jit(lambda: nnx.state(build_model(model_cfg, seed=seed)))
    state = init.lower().compile(compiler_options={"xla_backend_optimization_level": 0})()
    return nnx.merge(graphdef, state)


def check_freeze(model: nnx.Module, freeze: tuple[str, ...]) -> None:
    paths = [_path_text(p) for p, _ in nnx.to_flat_state(nnx.state(model, nnx.Param))]
    for prefix in freeze:
        if not any(_under(p, prefix) for p in paths):
            raise CLIError(f"train.freeze: {prefix!r} matches no parameter of this model "
                           f"(top-level modules: {sorted({p.split('/')[0] for p in paths})})")


def _teacher(config: ml_collections.ConfigDict, mesh):
    """(graphdef, replicated state) of the teacher term's fixed model: the starting model (init.model) in inference
    mode, loaded again on every start so that resuming needs nothing from the checkpoint. (None, None) when off."""
    if not config.loss.get("teacher_weight", 0.0):
        return None, None
    if not config.init.model:
        raise CLIError("loss.teacher_weight > 0 needs init.model: the teacher is the model training starts from")
    teacher = _load_init_model(config.init.model)
    set_mode(teacher, False)
    graphdef, state = nnx.split(teacher)
    return graphdef, parallel.replicate(state, mesh)


def _load_init_model(name: str):
    """A model to start from: a registry name (e.g. 'magenta-mobile') or a training workdir, as float weights."""
    from arbstyle.model import build_model

    if (Path(name).expanduser() / checkpoints.CONFIG_FILE).is_file():
        source = checkpoints.restore_model(Path(name).expanduser())
    else:
        try:
            from arbstyle.weights.registry import load_model
        except ModuleNotFoundError as err:
            raise CLIError(f"init.model={name!r}: arbstyle.weights.registry is not available ({err})") from None
        # Training needs float activations; an imported int8 emulation shares the same parameters.
        source = load_model(name, quantize_activations=False) if "quantize_activations" in source_keys() \
            else load_model(name)
    config = dict(source.config)
    if config.get("quantize_activations"):
        # Training needs float activations; the imported int8 emulation shares the same parameters by name.
        config["quantize_activations"] = False
        model = build_model(config)
        wanted = nnx.state(model)
        have = dict(nnx.to_flat_state(nnx.state(source)))
        flat = []
        for path, var in nnx.to_flat_state(wanted):
            if path not in have:
                raise CLIError(f"init.model={name!r}: the float model's {_path_text(path)} is not in the source")
            flat.append((path, have[path]))
        nnx.update(model, nnx.from_flat_state(flat))
        return model
    return source


def source_keys() -> set:
    from arbstyle.model import DEFAULT_CONFIG

    return set(DEFAULT_CONFIG)


def _load_trunk(model, name: str) -> None:
    """Pretrained weights for the style predictor's trunk (e.g. 'inception-v3': ImageNet-trained slim Inception)."""
    if model.predictor is None:
        raise CLIError(f"init.trunk={name!r}: a 'table' model has no style predictor trunk")
    try:
        from arbstyle.weights import pretrained
    except ModuleNotFoundError as err:
        raise CLIError(f"init.trunk={name!r}: arbstyle.weights.pretrained is not available ({err}); "
                       f"set --config.init.trunk='' to start from random weights") from None
    loader = getattr(pretrained, "load_trunk", None)
    if loader is None:
        raise CLIError(f"init.trunk={name!r}: arbstyle.weights.pretrained has no load_trunk(); "
                       f"set --config.init.trunk='' to start from random weights")
    loader(model.predictor.trunk, name)


def _load_transformer(model, source: str) -> None:
    """The transformer and CIN heads of another model (a registry name or a workdir, of the same width) or of a
    Magenta TFLite style transformer file (e.g. the full-width transformer of Magenta's Inception-v3 model)."""
    from arbstyle.weights import magenta_tflite

    if model.heads is None:
        raise CLIError(f"init.transformer={source!r}: a 'table' model has no CIN heads to load")
    if source.endswith(".tflite"):
        try:
            magenta_tflite.load_transformer(model.transformer, model.heads, Path(source).expanduser())
        except magenta_tflite.TFLiteImportError as err:
            raise CLIError(f"init.transformer: {err}") from None
        return
    donor = _load_init_model(source)
    if donor.heads is None or donor.config["alpha"] != model.config["alpha"]:
        raise CLIError(f"init.transformer={source!r}: needs an arbitrary-style model of width {model.config['alpha']}")
    nnx.update(model.transformer, nnx.state(donor.transformer))
    nnx.update(model.heads, nnx.state(donor.heads))


def _distill_bottleneck(model, distill, data_cfg, seed: int, *, quiet: bool = False) -> dict:
    """init.distill: the bottleneck fitted to a teacher model's embeddings of augmented training styles; returns
    the fit's report (arbstyle.training.distill.fit_bottleneck)."""
    from arbstyle import data
    from arbstyle.progress import Progress
    from arbstyle.training import distill as distillation

    if model.predictor is None:
        raise CLIError("init.distill: a 'table' model has no style predictor")
    teacher = _load_init_model(distill.teacher)
    if teacher.predictor is None:
        raise CLIError(f"init.distill.teacher={distill.teacher!r}: has no style predictor")
    set_mode(model, False)
    teacher.eval()
    # every process reads the same styles (as one process would), so all fit the same bottleneck
    pipeline = data.make_pipeline(data_cfg, split="train", seed=seed + 1, global_batch=8, process_index=0,
                                  process_count=1)
    styles = (batch["style"] for batch in pipeline)
    with Progress(distill.styles, desc=f"distill from {distill.teacher}", unit="styles", quiet=quiet) as bar:
        report = distillation.fit_bottleneck(model, teacher, styles, distill.styles, holdout=distill.holdout,
                                             progress=bar)
    return report


# ---- the data ------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class StyleTable:
    """For 'table' models: style id = offset of the style's dataset + its record index in the train split."""

    offsets: tuple[int, ...]
    names: list[str]


def _has_split(builder, split: str) -> bool:
    # TFDS split expressions: "train", "train[:10]", "train+validation".
    return {re.sub(r"\[.*\]$", "", part.strip()) for part in split.split("+")} <= set(builder.info.splits)


def style_table(data_cfg) -> StyleTable:
    import tensorflow_datasets as tfds

    from arbstyle.data import catalog, pipeline

    offsets, names = [], []
    for spec in pipeline.split_specs(data_cfg.style):
        _, _, pinned = catalog.parse_spec(spec)
        base = spec.rsplit(":", 1)[0] if pinned else spec
        builder = catalog.load(base, data_dir=data_cfg.data_dir or None, manual_dir=data_cfg.manual_dir or None)
        split = pinned or "train"
        if not _has_split(builder, split):
            continue  # the pipeline leaves such a dataset out too, so it takes no slot in style_source
        source = builder.as_data_source(split, decoders={"image": tfds.decode.SkipDecoding()})
        offsets.append(len(names))
        names.extend(str(source[i]["filename"].decode() if isinstance(source[i]["filename"], bytes)
                         else source[i]["filename"]) for i in range(len(source)))
    return StyleTable(tuple(offsets), names)


def device_batch(local: Mapping[str, np.ndarray], table: StyleTable | None) -> dict[str, np.ndarray]:
    """The arrays the step needs from a pipeline batch (style ids for table models)."""
    out = {"content": local["content"], "style": local["style"]}
    if table is not None:
        offsets = np.asarray(table.offsets, np.int32)
        out["style_id"] = (offsets[local["style_source"]] + local["style_index"]).astype(np.int32)
    return out


def _prepare_data(data_cfg) -> None:
    from jax.experimental import multihost_utils

    from arbstyle import data

    if parallel.is_primary():
        data.prepare(data_cfg)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("arbstyle-data-prepared")


def sample_pairs(data_cfg, count: int, seed: int, table: StyleTable | None) -> dict[str, np.ndarray]:
    """Fixed, unaugmented pairs for the sample grid: held-out images (eval_content / eval_style, else the 'val'
    splits) when the datasets have them, else training images. A table model knows only its training styles."""
    from arbstyle import data

    if table is None:
        try:
            return device_batch(data.fixed_pairs(data_cfg, count, split="val", seed=seed), None)
        except (ValueError, FileNotFoundError) as err:
            log.warning("sample grid: no held-out pairs (%s); using training images, unaugmented", err)
    cfg = data.resolve_config(data_cfg)
    cfg.eval_content = cfg.eval_style = ""
    return device_batch(data.fixed_pairs(cfg, count, split="train", seed=seed), table)


# ---- the step -------------------------------------------------------------------------------------------------------
def make_optimizer(opt: ml_collections.ConfigDict, total_steps: int) -> tuple[optax.GradientTransformation, Callable]:
    lr, warmup = float(opt.learning_rate), int(opt.warmup_steps)
    if opt.schedule == "constant":
        schedule = optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), optax.constant_schedule(lr)],
                                        [warmup]) if warmup else optax.constant_schedule(lr)
    elif opt.schedule == "cosine":
        schedule = optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(total_steps, warmup + 1))
    else:
        raise CLIError(f"optimizer.schedule must be 'constant' or 'cosine', got {opt.schedule!r}")
    if opt.name == "adam":
        tx = optax.adam(schedule, b1=float(opt.b1), b2=float(opt.b2), eps=float(opt.eps))
    elif opt.name == "sgd":
        tx = optax.sgd(schedule, momentum=float(opt.momentum) or None)
    else:
        raise CLIError(f"optimizer.name must be 'adam' or 'sgd', got {opt.name!r}")
    if float(opt.clip_norm) > 0:
        tx = optax.chain(optax.clip_by_global_norm(float(opt.clip_norm)), tx)
    return tx, schedule


def loss_config(cfg: ml_collections.ConfigDict):
    from arbstyle.losses import LossConfig

    try:
        return LossConfig(content_layers=tuple(tuple(x) for x in cfg.content_layers),
                          style_layers=tuple(tuple(x) for x in cfg.style_layers),
                          content_weight=cfg.content_weight, style_weight=cfg.style_weight, tv_weight=cfg.tv_weight,
                          pooling=cfg.pooling)
    except ValueError as err:
        raise CLIError(f"loss config: {err}") from None


def split_for_training(model: nnx.Module, freeze: tuple[str, ...] = ()):
    """(train graphdef, inference graphdef, trainable filter, filters, {'params', 'frozen', 'batch_stats', 'other'}):
    the model as the pure state the jitted step takes (`other`: any further variable kinds, carried unchanged)."""
    keep = trainable_filter(freeze)
    filters = (keep, nnx.Param, nnx.BatchStat, ...)
    set_mode(model, False)
    eval_graphdef = nnx.split(model, *filters)[0]
    set_mode(model, True, freeze)
    graphdef, params, frozen, batch_stats, other = nnx.split(model, *filters)
    pieces = {"params": params, "frozen": frozen, "batch_stats": batch_stats, "other": other}
    return graphdef, eval_graphdef, keep, filters, pieces


def style_grams(vgg, style, layers, size: int = 0) -> dict:
    """Gram targets of a style batch, from the images resized to size x size first when size > 0."""
    from arbstyle import losses

    if size and style.shape[1:3] != (size, size):
        style = jax.image.resize(style, (style.shape[0], size, size, style.shape[3]), "linear", antialias=True)
    return {k: losses.gram_matrix(v) for k, v in vgg(style, layers).items()}


def shift_images(images, shifts):
    """(B, H, W, C) images moved by (B, 2) sub-pixel (dy, dx) shifts, bilinear; what enters at the edges is not
    meaningful (callers crop it away)."""
    def one(image, shift):
        return jax.image.scale_and_translate(image, image.shape, (0, 1), jnp.ones(2, image.dtype), shift, "linear",
                                             antialias=False)
    return jax.vmap(one)(images, shifts)


def make_train_step(graphdef, vgg_graphdef, tx, schedule, losses_cfg, keep: Callable, arbitrary: bool,
                    style_size: int = 0, stability: tuple[float, float] = (0.0, 0.0), teacher=(None, 0.0),
                    motion: tuple[float, float] = (0.0, 0.0)):
    """state, vgg_state, batch[, teacher_state] -> new state, metrics. A non-finite loss or gradient leaves the
    state unchanged.

    stability: (weight, noise sigma) of the noise-stability term (config.loss.stability_*), off at weight 0.
    teacher: (graphdef, weight) of the teacher term (config.loss.teacher_weight), off at weight 0: the weight times
    the mean squared difference between the stylized batch and a fixed model's stylization of the same content with
    the same style embedding; the step then takes that model's state as its fourth argument. With every perceptual
    weight at 0 the loss network is not run at all.
    motion: (weight, largest shift in pixels) of the motion term (config.loss.motion_*), off at weight 0."""
    from arbstyle import losses

    content_layers = [k for k, _ in losses_cfg.content_layers]
    style_layers = [k for k, _ in losses_cfg.style_layers]
    perceptual = losses_cfg.weighted
    teacher_graphdef, teacher_weight = teacher

    def step(state, vgg_state, batch, teacher_state=None):
        model = nnx.merge(graphdef, state["params"], state["frozen"], state["batch_stats"], state["other"])
        content, style = batch["content"], batch["style"]
        if perceptual:
            vgg = nnx.merge(vgg_graphdef, vgg_state)
            content_feats = vgg(content, content_layers)
            grams = style_grams(vgg, style, style_layers, style_size)
        condition = style if arbitrary else batch["style_id"]
        fixed = nnx.merge(teacher_graphdef, teacher_state) if teacher_weight else None

        stability_weight, sigma = stability
        noisy = None
        if stability_weight:
            noise = jax.random.normal(jax.random.fold_in(state["rng"], 1), content.shape, content.dtype)
            noisy = jnp.clip(content + sigma * noise, 0.0, 1.0)

        motion_weight, max_shift = motion
        if motion_weight:
            shifts = jax.random.uniform(jax.random.fold_in(state["rng"], 2), (content.shape[0], 2), content.dtype,
                                        -max_shift, max_shift)
            margin = int(np.ceil(max_shift)) + 1
            moved = shift_images(content, shifts)

        def loss_fn(model):
            style_params = model.embed(condition) if arbitrary else condition
            stylized = model.stylize(content, style_params)
            if perceptual:
                total, breakdown = losses.perceptual_loss(vgg, stylized, content_feats, grams, losses_cfg)
            else:
                total, breakdown = jnp.zeros((), stylized.dtype), {}
            terms = {}
            if fixed is not None:
                target = jax.lax.stop_gradient(fixed.stylize(content, style_params))
                terms["teacher"] = teacher_weight * jnp.mean((stylized - target) ** 2)
            if noisy is not None:
                terms["stability"] = stability_weight * jnp.mean((model.stylize(noisy, style_params) - stylized) ** 2)
            if motion_weight:
                change = model.stylize(moved, style_params) - shift_images(stylized, shifts)
                terms["motion"] = motion_weight * jnp.mean(change[:, margin:-margin, margin:-margin] ** 2)
            if terms:
                total = total + sum(terms.values())
                breakdown = {**breakdown, **terms, "total": total}
            return total, breakdown

        (total, breakdown), grads = nnx.value_and_grad(loss_fn, argnums=nnx.DiffState(0, keep), has_aux=True)(model)
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        grad_norm = optax.tree.norm(grads)
        finite = jnp.isfinite(total) & jnp.isfinite(grad_norm)
        new = dict(state, params=optax.apply_updates(state["params"], updates), opt_state=opt_state,
                   batch_stats=nnx.state(model, nnx.BatchStat), step=state["step"] + 1,
                   rng=jax.random.fold_in(state["rng"], state["step"]))
        new = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, state)
        metrics = {**{f"loss/{k}": v for k, v in breakdown.items()}, "train/grad_norm": grad_norm,
                   "train/learning_rate": schedule(state["step"]), "finite": finite}
        return new, metrics

    return step


def make_sample_fn(eval_graphdef, vgg_graphdef, losses_cfg, arbitrary: bool, style_size: int = 0):
    """state, vgg_state, pairs -> (stylized pairs, loss breakdown on them): the sample grid and the held-out loss."""
    from arbstyle import losses

    content_layers = [k for k, _ in losses_cfg.content_layers]
    style_layers = [k for k, _ in losses_cfg.style_layers]

    def sample(state, vgg_state, pairs):
        model = nnx.merge(eval_graphdef, state["params"], state["frozen"], state["batch_stats"], state["other"])
        stylized = model(pairs["content"], pairs["style"] if arbitrary else pairs["style_id"])
        if not losses_cfg.weighted:
            return stylized, {}  # a run without perceptual loss has no held-out perceptual loss to report
        vgg = nnx.merge(vgg_graphdef, vgg_state)
        grams = style_grams(vgg, pairs["style"], style_layers, style_size)
        _, breakdown = losses.perceptual_loss(vgg, stylized, vgg(pairs["content"], content_layers), grams, losses_cfg)
        return stylized, breakdown
    return sample


# ---- outputs --------------------------------------------------------------------------------------------------------
def sample_grid(pairs: Mapping[str, np.ndarray], stylized: np.ndarray, gap: int = 4) -> np.ndarray:
    """Rows of content | style | stylized (style resized to the content's size), on white."""
    from arbstyle import images

    content = np.asarray(pairs["content"], np.float32)
    n, h, w, _ = content.shape
    grid = np.ones((n * h + (n - 1) * gap, 3 * w + 2 * gap, 3), np.float32)
    for i in range(n):
        style = np.asarray(pairs["style"][i], np.float32)
        if style.shape[:2] != (h, w):
            style = images.resize_to(style, (h, w))
        for j, tile in enumerate((content[i], style, np.asarray(stylized[i], np.float32))):
            grid[i * (h + gap):i * (h + gap) + h, j * (w + gap):j * (w + gap) + w] = np.clip(tile, 0, 1)
    return grid


METRICS_FILE = "metrics.jsonl"


class MetricsLog:
    """Every logged scalar as one JSON line {"step", "time", name: value, ...} in the workdir: readable with any
    tool, in any log viewer, without TensorBoard (benchmarks/training_curve.py plots it)."""

    def __init__(self, path: Path, *, enabled: bool = True):
        self.path, self.enabled = path, enabled

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        if not self.enabled or not scalars:
            return
        import json

        line = json.dumps({"step": int(step), "time": round(time.time(), 3),
                           **{k: float(v) for k, v in scalars.items()}})
        with open(self.path, "a") as f:
            f.write(line + "\n")


def read_metrics(workdir: str | os.PathLike) -> list[dict]:
    """The lines of a workdir's metrics log, in order; a resumed run's repeated steps keep their last value."""
    import json

    path = Path(workdir) / METRICS_FILE
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
    return rows


class _Stop:
    """SIGTERM/SIGINT set a flag that the loop reads after each step; a second signal exits at once."""

    def __init__(self):
        self.signum: int | None = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:
            signal.signal(signum, self._previous.get(signum) or signal.SIG_DFL)
            raise KeyboardInterrupt
        self.signum = signum
        log.warning("received %s: saving a checkpoint after this step", signal.Signals(signum).name)

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def requested(self) -> bool:
        if jax.process_count() == 1:
            return self.signum is not None
        # Every process must stop (and save) at the same step, whichever of them got the signal.
        from jax.experimental import multihost_utils

        flags = multihost_utils.process_allgather(np.asarray(self.signum is not None, np.int32))
        return bool(np.any(flags))


@dataclasses.dataclass
class Result:
    status: str  # "done" | "interrupted"
    signum: int | None  # the signal that interrupted the run
    start_step: int
    step: int
    last_checkpoint: int | None
    losses: dict[int, float]  # step -> total loss, for the steps this run trained
    devices: int = 1
    processes: int = 1


# ---- the trainer ----------------------------------------------------------------------------------------------------
def _model_config(config, table: StyleTable | None) -> dict:
    from arbstyle.model import model_config

    cfg = config.model.to_dict()
    if cfg["predictor"] == "table":
        if not cfg["num_styles"]:
            cfg["num_styles"] = len(table.names)
        elif cfg["num_styles"] != len(table.names):
            raise CLIError(f"model.num_styles={cfg['num_styles']} but the style data holds {len(table.names)} "
                           f"images (set 0 to take the number from the data)")
    try:
        return model_config(cfg)
    except (KeyError, ValueError) as err:
        raise CLIError(f"model config: {err}") from None


def _write_run_config(workdir: Path, config, model_cfg: dict, table: StyleTable | None) -> None:
    payload = {"model": model_cfg, "experiment": config.to_dict(), "arbstyle_version": arbstyle.__version__}
    if table is not None:
        payload["styles"] = table.names
    checkpoints.write_json_atomic(workdir / checkpoints.CONFIG_FILE, payload)


def _host_float(x) -> float:
    return float(parallel.to_host(x))


def train(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> Result:
    """Train (or resume) in `workdir`. Call parallel.initialize_distributed() first for multi-process runs."""
    from arbstyle import data, images
    from arbstyle.model import build_model
    from arbstyle.nets.vgg import load_vgg16
    from arbstyle.progress import Progress
    from arbstyle.training.tensorboard import RunLog

    workdir = Path(workdir).expanduser().absolute()
    primary = parallel.is_primary()
    tc = config.train
    mesh = parallel.make_mesh(config.parallel.num_devices or None)
    try:
        local_batch = parallel.check_batch_size(tc.batch_size, mesh)
    except ValueError as err:
        raise CLIError(f"train.batch_size: {err}") from None
    freeze = tuple(tc.freeze)
    data_cfg = data.resolve_config(config.data)

    _prepare_data(data_cfg)
    table = style_table(data_cfg) if config.model.predictor == "table" else None

    steps_on_disk = checkpoints.available_steps(workdir)
    resuming = bool(steps_on_disk)
    if resuming:
        try:
            model_cfg = checkpoints.read_config(workdir)["model"]
        except checkpoints.CheckpointError as err:
            # the checkpoints do not depend on it: this run's config rewrites it below
            log.warning("%s; rewriting it from this run's config", err)
            model_cfg = _model_config(config, table) if not config.init.model else None
            if model_cfg is None:
                raise CLIError(f"{err}; with init.model set, use a new --workdir") from None
        wanted = _model_config(config, table) if not config.init.model else model_cfg
        if wanted != model_cfg:
            raise CLIError(f"{workdir / checkpoints.CONFIG_FILE}: the workdir holds a different model "
                           f"({model_cfg}) than this config asks for ({wanted}); use a new --workdir")
        model = nnx.eval_shape(lambda: build_model(model_cfg, seed=config.seed))
    elif config.init.model:
        model = _load_init_model(config.init.model)
        model_cfg = dict(model.config)
        if model_cfg != _model_config(config, table):
            log.warning("init.model=%s: training its own architecture %s; config.model is ignored",
                        config.init.model, model_cfg)
    else:
        model_cfg = _model_config(config, table)
        model = init_model(model_cfg, config.seed)
    if config.init.trunk and not resuming:
        _load_trunk(model, config.init.trunk)
    if config.init.transformer and not resuming:
        _load_transformer(model, config.init.transformer)
    distilled = None
    if config.init.distill.teacher and not resuming:
        distilled = _distill_bottleneck(model, config.init.distill, data_cfg, config.seed,
                                        quiet=not (parallel.is_primary() and config.train.progress))
    check_freeze(model, freeze)
    if tc.bf16:
        use_bf16(model)

    graphdef, eval_graphdef, keep, filters, pieces = split_for_training(model, freeze)
    params, frozen, batch_stats, other = (pieces[k] for k in ("params", "frozen", "batch_stats", "other"))
    del model
    tx, schedule = make_optimizer(config.optimizer, tc.steps)
    fresh = dict(pieces, step=jnp.zeros((), jnp.int32), rng=jax.random.PRNGKey(config.seed))

    mngr = checkpoints.manager(workdir, max_to_keep=tc.keep_checkpoints)
    repl = parallel.replicated(mesh)
    iterator = data.make_pipeline(data_cfg, split="train", seed=config.seed, global_batch=tc.batch_size,
                                  process_index=jax.process_index(), process_count=jax.process_count())
    if resuming:
        abstract = dict(fresh, opt_state=jax.eval_shape(tx.init, params))

        def restore(step):
            return mngr.restore(step, args=ocp.args.Composite(**{
                checkpoints.MODEL_ITEM: ocp.args.StandardRestore(checkpoints.abstract_like(
                    nnx.to_pure_dict(nnx.merge_state(params, frozen, batch_stats, other)), repl)),
                checkpoints.TRAIN_ITEM: ocp.args.StandardRestore(checkpoints.abstract_like(
                    checkpoints.pure({k: abstract[k] for k in ("opt_state", "step", "rng")}), repl)),
                checkpoints.DATA_ITEM: grain.checkpoint.CheckpointRestore(iterator),
            }))

        try:
            start, restored, damaged = checkpoints.restore_newest(workdir, restore)
        except checkpoints.CheckpointError as err:
            raise CLIError(str(err)) from None
        if damaged and primary:  # out of the way, so that training can write those steps again
            for bad in damaged:
                log.warning("%s: moved to %s", checkpoints.checkpoint_dir(workdir) / str(bad),
                            checkpoints.set_aside(workdir, bad).name)
        if damaged:
            mngr.reload()
        full = nnx.merge_state(params, frozen, batch_stats, other)
        nnx.replace_by_pure_dict(full, restored[checkpoints.MODEL_ITEM])
        model = nnx.merge(graphdef, full)
        _, params, frozen, batch_stats, other = nnx.split(model, *filters)
        train_part = checkpoints.unpure({"opt_state": abstract["opt_state"], "step": 0, "rng": 0},
                                        restored[checkpoints.TRAIN_ITEM])
        state = dict(params=params, frozen=frozen, batch_stats=batch_stats, other=other, **train_part)
        if int(parallel.to_host(state["step"])) != start:
            raise CLIError(f"{checkpoints.checkpoint_dir(workdir) / str(start)}: holds step "
                           f"{int(parallel.to_host(state['step']))}, not {start}")
    else:
        start = 0
        state = parallel.replicate(dict(fresh, opt_state=tx.init(params)), mesh)
    if primary:
        _write_run_config(workdir, config, model_cfg, table)

    vgg_graphdef, vgg_state = nnx.split(load_vgg16(config.loss.pooling))
    vgg_state = parallel.replicate(vgg_state, mesh)
    arbitrary = model_cfg["predictor"] != "table"
    stability = (float(config.loss.get("stability_weight", 0.0)), float(config.loss.get("stability_noise", 0.0)))
    teacher_graphdef, teacher_state = _teacher(config, mesh)
    step_fn = jax.jit(make_train_step(graphdef, vgg_graphdef, tx, schedule, loss_config(config.loss), keep, arbitrary,
                                      config.loss.style_size, stability,
                                      (teacher_graphdef, float(config.loss.get("teacher_weight", 0.0))),
                                      (float(config.loss.get("motion_weight", 0.0)),
                                       float(config.loss.get("motion_shift", 0.0)))),
                      in_shardings=(repl, repl, parallel.batch_sharding(mesh), repl), out_shardings=(repl, repl),
                      donate_argnums=(0,))
    sample_fn = jax.jit(make_sample_fn(eval_graphdef, vgg_graphdef, loss_config(config.loss), arbitrary,
                                       config.loss.style_size),
                        in_shardings=(repl, repl, repl), out_shardings=repl)
    pairs = sample_pairs(data_cfg, tc.num_samples, config.seed, table) if tc.num_samples else None
    pairs_on_mesh = parallel.replicate(pairs, mesh) if pairs is not None else None

    writer = RunLog(workdir / "tensorboard", enabled=primary)
    writer.config(config.to_dict(), start)
    metrics_log = MetricsLog(workdir / METRICS_FILE, enabled=primary)
    last_checkpoint = start if resuming else None

    def save(step: int, *, force: bool = False) -> None:
        nonlocal last_checkpoint
        full = nnx.merge_state(state["params"], state["frozen"], state["batch_stats"], state["other"])
        mngr.save(step, force=force, args=ocp.args.Composite(**{
            checkpoints.MODEL_ITEM: ocp.args.StandardSave(nnx.to_pure_dict(full)),
            checkpoints.TRAIN_ITEM: ocp.args.StandardSave(checkpoints.pure(
                {k: state[k] for k in ("opt_state", "step", "rng")})),
            checkpoints.DATA_ITEM: grain.checkpoint.CheckpointSave(iterator),
        }))
        last_checkpoint = step

    def write_samples(step: int) -> None:
        if pairs is None:
            return
        stylized, breakdown = parallel.to_host(sample_fn(state, vgg_state, pairs_on_mesh))
        held_out = {f"val/loss/{k}": float(v) for k, v in breakdown.items()}
        writer.scalars(held_out, step)
        metrics_log.write(step, held_out)
        if primary:
            grid = sample_grid(pairs, stylized)
            images.save_image(grid, workdir / "samples" / f"step_{step:07d}.png")
            writer.image("samples", grid, step)

    if distilled is not None:
        # the distilled starting point, kept as step 0 (with its held-out loss) to compare fine-tuning against
        metrics_log.write(0, {f"distill/{k}": v for k, v in distilled.items() if isinstance(v, (int, float))})
        write_samples(0)
        save(0, force=True)

    losses: dict[int, float] = {}
    status = "done"
    bar = Progress(tc.steps, desc="train", unit="steps", initial=start,
                   quiet=not (primary and tc.progress and start < tc.steps))
    window: dict[str, float] = {}
    window_start, window_steps = time.perf_counter(), 0
    step = start
    try:
        with _Stop() as stop:
            while step < tc.steps:
                local = next(iterator)
                batch = parallel.global_batch(device_batch(local, table), mesh)
                state, metrics = step_fn(state, vgg_state, batch, teacher_state)
                step += 1
                host = parallel.to_host(metrics)
                if not bool(host.pop("finite")):
                    bad = {k: float(v) for k, v in host.items() if k in ("loss/total", "train/grad_norm")}
                    raise TrainingDiverged(
                        f"non-finite loss or gradient at step {step} ({bad}); stopped without saving it. "
                        f"Last good checkpoint: {f'step {last_checkpoint}' if last_checkpoint is not None else 'none'}"
                        f" in {checkpoints.checkpoint_dir(workdir)}")
                losses[step] = float(host["loss/total"])
                for key, value in host.items():
                    window[key] = window.get(key, 0.0) + float(value)
                window_steps += 1
                bar.set_postfix(loss=losses[step])
                bar.update(1)
                if step % tc.log_every == 0 or step == tc.steps:
                    seconds = time.perf_counter() - window_start
                    scalars = {k: v / window_steps for k, v in window.items()}
                    scalars["train/images_per_second"] = window_steps * tc.batch_size / max(seconds, 1e-9)
                    writer.scalars(scalars, step)
                    metrics_log.write(step, scalars)
                    window, window_start, window_steps = {}, time.perf_counter(), 0
                if tc.sample_every and step % tc.sample_every == 0 and step != tc.steps:
                    write_samples(step)
                if step % tc.checkpoint_every == 0 and step != tc.steps:
                    save(step)
                if stop.requested():
                    status = "interrupted"
                    break
            if step != last_checkpoint:
                save(step, force=True)
            if status == "done" and start < tc.steps:
                write_samples(step)
    finally:
        bar.close()
        mngr.wait_until_finished()
        mngr.close()
        writer.close()
    return Result(status=status, signum=stop.signum, start_step=start, step=step, last_checkpoint=last_checkpoint,
                  losses=losses, devices=mesh.devices.size, processes=jax.process_count())
