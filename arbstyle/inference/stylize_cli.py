"""CLI commands `arbstyle stylize`, `arbstyle embed` and `arbstyle demo`.

Every input is checked before anything is written (a bad file is one line naming it, exit 2, no output), and
every output is written atomically by `arbstyle.images.save_image`.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from arbstyle import images
from arbstyle.cli import CLIError
# Argument definitions need only these defaults: JAX and the networks load when a command runs.
from arbstyle.inference.stylize_defaults import (ACTIVATIONS, DEFAULT_ACTIVATIONS, DEFAULT_MODEL, DEFAULT_TILE,
                                                 STYLE_SIZE)
from arbstyle.progress import Progress, progress

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
OUTPUT_FORMATS = {"png": ".png", "jpg": ".jpg", "jpeg": ".jpg", "webp": ".webp"}
GLOB_CHARS = set("*?[")
MIX = "<mix>"  # source of the one mixed style made by --style-weights


# ---------------------------------------------------------------------------------------------- inputs


def expand_inputs(specs: list[str], what: str) -> list[Path]:
    """Files, folders (their images, sorted, not recursive) and globs -> a de-duplicated list of files."""
    found: list[Path] = []
    for spec in specs:
        path = Path(spec).expanduser()
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
            if not files:
                raise CLIError(f"{path}: folder has no images ({', '.join(sorted(IMAGE_EXTS))})")
            found.extend(files)
        elif path.exists():
            found.append(path)
        elif GLOB_CHARS & set(spec):
            files = sorted(Path(p) for p in glob.glob(os.path.expanduser(spec), recursive=True)
                           if Path(p).is_file())
            if not files:
                raise CLIError(f"{spec}: no {what} files match this pattern")
            found.extend(files)
        else:
            raise CLIError(f"{spec}: no such file or folder")
    seen, unique = set(), []
    for path in found:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


@dataclass
class Style:
    name: str
    source: str  # an image path, or "FILE:NAME" for a stored embedding
    embedding: np.ndarray | dict | None = None  # a (D,) embedding, or CIN parameters (`arbstyle learn --params cin`)


@dataclass
class Job:
    content: Path
    styles: list[Style] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)


def read_embeddings(path: Path) -> tuple[list[str], list, dict]:
    """An `arbstyle embed` or `arbstyle learn` file -> (names, styles, metadata); each style is a (D,) embedding
    or a CIN dict. Errors name the file."""
    from arbstyle.inference.stylize import load_styles

    if not path.is_file():
        raise CLIError(f"{path}: no such embeddings file")
    try:
        styles, meta = load_styles(path)
    except ValueError as err:
        raise CLIError(str(err)) from None
    return list(styles), list(styles.values()), meta


def parse_style_embedding(spec: str, model: str | None = None) -> list[Style]:
    """FILE:NAME -> that embedding; FILE alone -> every embedding in the file."""
    path, name = Path(spec), None
    if not path.is_file() and ":" in spec:
        file_part, name = spec.rsplit(":", 1)
        path = Path(file_part)
    names, vectors, meta = read_embeddings(path.expanduser())
    if model is not None and meta.get("model") not in (None, model):
        print(f"arbstyle stylize: warning: {path} holds embeddings of model {meta['model']!r}, not {model!r}",
              file=sys.stderr)
    if name is None:
        return [Style(n, f"{path}:{n}", v) for n, v in zip(names, vectors)]
    if name not in names:
        raise CLIError(f"{path}: no embedding named {name!r} (has: {', '.join(names[:20])})")
    return [Style(name, spec, vectors[names.index(name)])]


def parse_weights(text: str, count: int) -> np.ndarray:
    try:
        weights = np.asarray([float(w) for w in text.split(",") if w.strip()], np.float64)
    except ValueError:
        raise CLIError(f"--style-weights {text!r}: expected comma-separated numbers such as 0.7,0.3") from None
    if len(weights) != count:
        raise CLIError(f"--style-weights has {len(weights)} values for {count} styles")
    if (weights < 0).any() or weights.sum() <= 0 or not np.isfinite(weights).all():
        raise CLIError("--style-weights must be non-negative with a positive sum")
    return weights / weights.sum()


def _output_suffix(args, single_file: Path | None) -> str:
    if args.format:
        return OUTPUT_FORMATS[args.format]
    if single_file is not None:
        return single_file.suffix.lower()
    return ".png"


def plan_jobs(args) -> tuple[list[Job], list[Style], np.ndarray | None]:
    """Resolve contents, styles, pairing and output names; validate everything that needs no model."""
    if not args.content:
        taken = " ".join(args.style or [])
        if len(args.style or []) > 1:
            raise CLIError(f"no content images: -s/--style took all of {taken!r}; name the contents before -s, "
                           f"e.g. arbstyle stylize {args.style[-1]} -s {' '.join(args.style[:-1])} -o ...")
        raise CLIError("no content images: give photos, folders or globs before -s/--style")
    contents = expand_inputs(args.content, "content")
    styles = [Style(p.stem, str(p)) for p in expand_inputs(args.style or [], "style")]
    for spec in args.style_embedding or []:
        styles.extend(parse_style_embedding(spec, args.model))
    if not styles:
        raise CLIError("no styles: give --style images and/or --style-embedding FILE:NAME")
    weights = None
    if args.style_weights:
        weights = parse_weights(args.style_weights, len(styles))
    if args.pairs and weights is not None:
        raise CLIError("--pairs and --style-weights do not combine (weights mix all styles into one)")
    if args.pairs and len(contents) != len(styles):
        raise CLIError(f"--pairs needs as many contents as styles, got {len(contents)} and {len(styles)}")

    out = Path(args.output).expanduser()
    n_styles = 1 if weights is not None else len(styles)
    n_pairs = len(contents) if (args.pairs or weights is not None) else len(contents) * n_styles
    # -o names a file if it has an image extension, or any extension for a single pair (so that a typo such
    # as out.pgn is refused rather than becoming a folder); an existing folder or a trailing slash is a folder.
    folder_hint = args.output.endswith(("/", os.sep)) or out.is_dir()
    is_file = not folder_hint and (out.suffix.lower() in IMAGE_EXTS | set(images.SAVE_FORMATS)
                                   or (bool(out.suffix) and n_pairs == 1))
    if is_file and out.suffix.lower() not in images.SAVE_FORMATS:
        raise images.ImageError(out, f"unsupported output extension {out.suffix!r}; use .png, .jpg or .webp")
    if is_file and n_pairs != 1:
        raise CLIError(f"{out}: {n_pairs} outputs need a folder for -o, not a file name")
    suffix = _output_suffix(args, out if is_file else None)

    mix_name = "+".join(s.name for s in styles)
    jobs = []
    for i, content in enumerate(contents):
        if weights is not None:
            chosen = [Style(mix_name, MIX)]
        elif args.pairs:
            chosen = [styles[i]]
        else:
            chosen = styles
        names = [out] if is_file else [out / f"{content.stem}__{s.name}{suffix}" for s in chosen]
        jobs.append(Job(content, chosen, names))
    seen: dict[Path, Path] = {}
    for job in jobs:
        for path in job.outputs:
            if path in seen:
                raise CLIError(f"{path}: two inputs would write this output ({seen[path]} and {job.content}); "
                               "rename one of them")
            seen[path] = job.content
    return jobs, styles, weights


# ---------------------------------------------------------------------------------------------- stylize


def add_arguments_stylize(parser: argparse.ArgumentParser) -> None:
    # contents may be empty for argparse so that `-s style.jpg photo.jpg` (where -s takes both) reaches
    # plan_jobs, which explains what happened instead of argparse's bare "required: content"
    parser.add_argument("content", nargs="*", help="content images: files, folders or globs, or one video clip (before -s)")
    parser.add_argument("-s", "--style", nargs="+", help="style images: files, folders or globs (takes every "
                        "following name up to the next option, so give the contents first)")
    parser.add_argument("--style-embedding", action="append", metavar="FILE[:NAME]",
                        help="a style from an `arbstyle embed` file (all of the file's styles without :NAME)")
    parser.add_argument("-o", "--output", required=True,
                        help="output folder (names <content>__<style>.<ext>), or a file name for one pair")
    parser.add_argument("--pairs", action="store_true", help="pair the i-th content with the i-th style "
                        "instead of every content with every style")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    parser.add_argument("--style-weights", metavar="W1,W2,...",
                        help="mix all styles into one, with these weights (normalised)")
    parser.add_argument("--strength", type=float, default=1.0,
                        help="0..1: interpolate from the content's own style (0) to the style (1); default 1")
    parser.add_argument("--content-size", type=int, help="resize the content's shorter side to this (default: own size)")
    parser.add_argument("--max-size", type=int, help="downscale the content so its longer side is at most this")
    parser.add_argument("--work-size", type=int,
                        help="run the network with the longer side at most this and upscale the result: faster, "
                             "softer (default: full resolution)")
    parser.add_argument("--style-size", type=int, default=STYLE_SIZE,
                        help=f"style images are resized and centre-cropped to this square (default {STYLE_SIZE})")
    parser.add_argument("--preserve-color", action="store_true", help="keep the content's colours (luminance transfer)")
    _model_arguments(parser)
    parser.add_argument("--format", choices=sorted(OUTPUT_FORMATS), help="output format (default: png, or -o's extension)")
    parser.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality (default 95)")
    parser.add_argument("--tiling", choices=["auto", "on", "off"], default="auto",
                        help="exact tiled inference: auto (when an untiled pass would need a buffer over the "
                             "backend's limit, 2 GiB on CPU, or over 40%% of RAM), on or off")
    parser.add_argument("--tile-size", type=int, default=DEFAULT_TILE,
                        help=f"largest tile side for tiled inference (default {DEFAULT_TILE}; smaller uses less memory)")
    parser.add_argument("--no-bucket", action="store_true",
                        help="compile for each exact content size instead of padding to size buckets")
    parser.add_argument("--keep-going", action="store_true",
                        help="skip unreadable contents (reported) instead of stopping before any output")
    from arbstyle.inference.video_cli import add_video_arguments

    add_video_arguments(parser)


def _model_arguments(parser, *, transformer: bool = True) -> None:
    """--model and --activations; --precision only where the transformer runs (the predictor is always fp32)."""
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model name or checkpoint path (default {DEFAULT_MODEL})")
    if transformer:
        parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="transformer precision")
    parser.add_argument("--activations", choices=list(ACTIVATIONS), default=DEFAULT_ACTIVATIONS,
                        help="imported int8 models: float activations (default, fast, tileable) or exact "
                             "replay of the int8 graph (about 8x slower, no tiling)")


# Upper bounds of the size flags. The predictor was trained on 256 px styles, so a larger style square only
# costs memory; content sides are bounded by the memory check of the working size (`_check_working_sizes`).
MAX_STYLE_SIZE = 1024
MAX_SIDE = 1 << 20


def _check_numbers(args) -> None:
    """Every numeric option in its range, one line naming the flag; before anything is read or loaded."""
    strength = getattr(args, "strength", None)
    if strength is not None and not 0.0 <= strength <= 1.0:  # NaN fails this too
        raise CLIError(f"--strength must be between 0 and 1, got {strength}")
    bounds = {"content_size": MAX_SIDE, "max_size": MAX_SIDE, "work_size": MAX_SIDE, "style_size": MAX_STYLE_SIZE,
              "tile_size": MAX_SIDE, "size": 4096}
    for flag, high in bounds.items():
        value = getattr(args, flag, None)
        if value is not None and not images.MIN_SIDE <= value <= high:
            raise CLIError(f"--{flag.replace('_', '-')} must be between {images.MIN_SIDE} and {high}, got {value}")
    quality = getattr(args, "quality", None)
    if quality is not None and not 1 <= quality <= 100:
        raise CLIError(f"--quality must be 1..100, got {quality}")


def _model_alpha(model: str) -> float:
    """The transformer width of a model name or workdir without loading it (1.0, the widest, when unknown)."""
    from arbstyle.weights import pretrained

    try:
        if model in pretrained.ARTIFACTS:
            config = pretrained.model_config(model)
        else:  # a workdir: only then is the checkpoint machinery (orbax) worth importing
            from arbstyle.training import checkpoints

            config = checkpoints.read_config(Path(model).expanduser())["model"]
        return float((config or {}).get("alpha", 1.0))
    except (ValueError, TypeError, OSError):
        return 1.0  # the registry reports a bad model with its own message when it loads


def working_size(width: int, height: int, content_size: int | None, max_size: int | None) -> tuple[int, int]:
    """The size `Stylizer.prepare_content` gives a width x height content."""
    if content_size:
        scale = content_size / min(width, height)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
    if max_size and max(width, height) > max_size:
        scale = max_size / max(width, height)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
    return width, height


def _check_working_sizes(args, jobs: list[Job]) -> None:
    """Refuse, before the model loads, a content whose result would not fit the memory budget even tiled."""
    from arbstyle.inference.stylize import MEMORY_FRACTION, physical_memory, tiled_bytes_per_pixel

    budget = MEMORY_FRACTION * physical_memory()
    per_pixel = tiled_bytes_per_pixel(_model_alpha(args.model))
    for job in jobs:
        width, height = working_size(*images.image_size(job.content), args.content_size, args.max_size)
        need = width * height * per_pixel
        if need > budget:
            flag = f"--content-size {args.content_size}: " if args.content_size else ""
            raise CLIError(f"{flag}{job.content} would be stylized at {width}x{height}, which needs about "
                           f"{need / 2**30:.1f} GiB even tiled, over the budget of {budget / 2**30:.1f} GiB "
                           "(40% of memory); use a smaller --content-size or --max-size")


def make_stylizer(args, **kwargs):
    from arbstyle._flax import import_flax_without_ipython
    from arbstyle.inference.stylize import Stylizer
    from arbstyle.weights import registry

    if args.model not in registry.names():  # a training workdir: built here (pretrained names run stored programs)
        import_flax_without_ipython()

    try:
        return Stylizer.load(args.model, activations=args.activations, precision=getattr(args, "precision", "fp32"),
                             style_size=getattr(args, "style_size", STYLE_SIZE), programs=True, **kwargs)
    except ValueError as err:  # the registry's errors (unknown name, bad workdir) and bad option combinations
        raise CLIError(str(err)) from None


def _validate_contents(jobs: list[Job], keep_going: bool) -> tuple[list[Job], list[str]]:
    """Decode every content that will be used, so that a bad file stops the run before any output is written."""
    good, errors = [], []
    with Progress(len(jobs), desc="checking contents", unit="image", quiet=len(jobs) < 8, leave=False) as bar:
        for job in jobs:
            try:
                images.load_image(job.content, max_side=64)  # full decode (reduced scale for JPEG), then dropped
                good.append(job)
            except images.ImageError as err:
                if not keep_going:
                    bar.quiet = True  # the error is the one line to print, not a last progress line
                    raise
                errors.append(str(err))
            bar.update()
    return good, errors


def _row(batch, i: int):
    from arbstyle.inference.stylize import is_cin

    return {k: (g[i], b[i]) for k, (g, b) in batch.items()} if is_cin(batch) else batch[i]


def run_stylize(args) -> int:
    from arbstyle.inference.stylize import is_cin, mix_cin, preserve_colors
    from arbstyle.inference.video_cli import run_video, wants_video

    if wants_video(args):
        return run_video(args)
    _check_numbers(args)
    jobs, styles, weights = plan_jobs(args)
    # leftovers of a run killed mid-write (kill -9 cannot be caught), also beside outputs that will be skipped
    images.remove_stale_temps(*(path for job in jobs for path in job.outputs))
    skipped = 0
    if not args.overwrite:
        for job in jobs:
            keep = [(s, o) for s, o in zip(job.styles, job.outputs) if not o.exists()]
            skipped += len(job.outputs) - len(keep)
            job.styles, job.outputs = [s for s, _ in keep], [o for _, o in keep]
    todo = [job for job in jobs if job.outputs]
    if not todo:
        print(f"nothing to do: all {skipped} output(s) exist already (use --overwrite)")
        return 0
    for path in {job.outputs[0].parent: job.outputs[0] for job in todo}.values():  # one probe per folder
        images.check_writable(path)
    # Every input is decoded before the model loads: a bad file stops the run before anything is written.
    style_files = [s for s in styles if s.embedding is None]
    for style in style_files:
        images.load_image(style.source, max_side=64)  # decoded to check it, then dropped; embedded below
    todo, errors = _validate_contents(todo, args.keep_going)
    for line in errors:
        print(f"arbstyle stylize: skipping: {line}", file=sys.stderr)
    if not todo:
        return 2
    _check_working_sizes(args, todo)

    stylizer = make_stylizer(args, tile=args.tile_size, bucket=not args.no_bucket)
    for start in range(0, len(style_files), 64):  # in chunks: a folder of paintings never sits in memory whole
        chunk = style_files[start:start + 64]
        for style, vector in zip(chunk, stylizer.embed([s.source for s in chunk])):
            style.embedding = vector
    for style in styles:
        if not is_cin(style.embedding) and style.embedding.shape != (stylizer.embedding_dim,):
            raise CLIError(f"{style.source}: embedding has {style.embedding.shape[0]} values, "
                           f"model {args.model} expects {stylizer.embedding_dim}")
    try:  # embeddings stay embeddings; if any style is CIN parameters, all become CIN parameters
        batch = stylizer.style_batch([s.embedding for s in styles])
    except ValueError as err:
        raise CLIError(f"{args.model}: {err}") from None
    by_name = {s.name: i for i, s in enumerate(styles)}
    mixed = None
    if weights is not None:
        mixed = mix_cin(batch, weights) if is_cin(batch) else stylizer.mix(batch, weights)
    tiling = {"auto": None, "on": True, "off": False}[args.tiling]

    total = sum(len(job.outputs) for job in todo)
    with Progress(total, desc="stylizing", unit="image") as bar:
        for job in todo:
            content = stylizer.prepare_content(job.content, content_size=args.content_size, max_size=args.max_size)
            vectors = stylizer.style_batch([mixed if s.source == MIX else _row(batch, by_name[s.name])
                                            for s in job.styles])
            if tiling is None and not args.work_size and stylizer.needs_tiling(*content.shape[:2]):
                bar.write(f"arbstyle stylize: {job.content}: {content.shape[1]}x{content.shape[0]} is stylized in "
                          f"tiles (an untiled pass would exceed the per-buffer or memory limit)")
            vectors = stylizer.apply_strength(vectors, content, args.strength)
            try:
                outs = stylizer.render(content, vectors, work_size=args.work_size, tile=tiling)
            except ValueError as err:  # e.g. a size that needs tiling with exact activations
                raise CLIError(f"{job.content}: {err}") from None
            for out, path in zip(outs, job.outputs):
                if args.preserve_color:
                    out = preserve_colors(out, content)
                images.save_image(out, path, quality=args.quality)
                bar.update()
    note = f", skipped {skipped} existing (use --overwrite)" if skipped else ""
    where = todo[0].outputs[0] if total == 1 else Path(args.output)
    print(f"wrote {total} image(s) to {where}{note}")
    return 2 if errors else 0


# ---------------------------------------------------------------------------------------------- embed


def add_arguments_embed(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("styles", nargs="+", help="style images: files, folders or globs")
    parser.add_argument("-o", "--output", required=True, help="output .npz (names + embeddings)")
    parser.add_argument("--style-size", type=int, default=STYLE_SIZE,
                        help=f"resize and centre-crop styles to this square (default {STYLE_SIZE})")
    _model_arguments(parser, transformer=False)


def write_embeddings(path: Path, names: list[str], vectors: np.ndarray, model: str) -> None:
    """Atomic .npz write: names as a unicode array (loads without pickle), embeddings (N, D) float32."""
    from arbstyle.inference.stylize import save_styles

    save_styles(path, names, list(np.asarray(vectors, np.float32)), model=model)


def run_embed(args) -> int:
    _check_numbers(args)
    out = Path(args.output).expanduser()
    if out.suffix.lower() != ".npz":
        raise CLIError(f"{out}: the embeddings file must end in .npz")
    images.check_writable(out)
    files = expand_inputs(args.styles, "style")
    names = [p.stem for p in files]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise CLIError(f"several styles are named {', '.join(dupes)}; names come from file stems and must differ")
    for path in files:
        images.load_image(path, max_side=64)  # every file checked before the model loads
    stylizer = make_stylizer(args)
    vectors = np.concatenate([stylizer.embed([str(p) for p in files[i:i + 64]])
                              for i in progress(range(0, len(files), 64), desc="embedding", unit="chunk",
                                                quiet=len(files) <= 64)])
    write_embeddings(out, names, vectors, args.model)
    print(f"wrote {len(names)} embedding(s) of {vectors.shape[1]} values to {out}")
    return 0


# ---------------------------------------------------------------------------------------------- demo

DEMO_CONTENTS = ["astronaut", "chelsea", "coffee", "rocket"]
DEMO_STYLES = ["immunohistochemistry", "hubble_deep_field", "brick", "gravel"]


def add_arguments_demo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", default="arbstyle_demo.png", help="contact sheet image (default %(default)s)")
    parser.add_argument("--size", type=int, default=256, help="longer side of each content tile (default 256)")
    parser.add_argument("--contents", nargs="+", default=DEMO_CONTENTS, help="skimage.data photo names")
    parser.add_argument("--styles", nargs="+", default=DEMO_STYLES, help="skimage.data texture/painting names")
    parser.add_argument("--strength", type=float, default=1.0)
    parser.add_argument("--style-size", type=int, default=STYLE_SIZE)
    parser.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality of the sheet (default 95)")
    _model_arguments(parser)


def skimage_sample(name: str) -> np.ndarray:
    """A sample image bundled with scikit-image, as float32 HxWx3 (no download)."""
    import skimage.data

    loader = getattr(skimage.data, name, None)
    if loader is None or name.startswith("_") or not callable(loader):
        raise CLIError(f"skimage.data has no image named {name!r}")
    try:
        arr = loader()
    except Exception as err:  # noqa: BLE001  (some samples need an optional download package)
        raise CLIError(f"skimage.data.{name}: not available offline ({type(err).__name__})") from None
    if isinstance(arr, tuple):
        arr = arr[0]
    arr = np.asarray(arr)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.ndim not in (2, 3):
        raise CLIError(f"skimage.data.{name} is not a 2-D image")
    return images.to_float32(arr)


def contact_sheet(contents: list[np.ndarray], styles: list[np.ndarray], results: list[list[np.ndarray]],
                  *, cell: int, labels: tuple[list[str], list[str]] | None = None) -> np.ndarray:
    """Grid: top row the styles, left column the contents, result (i, j) at row i + 1, column j + 1.

    Each image is fitted into a `cell` x `cell` square (aspect kept, centred); labels go on the image itself.
    """
    from PIL import Image, ImageDraw

    gap = max(4, cell // 32)
    rows, cols = len(contents) + 1, len(styles) + 1
    sheet = Image.new("RGB", (cols * (cell + gap) + gap, rows * (cell + gap) + gap), "white")
    draw = ImageDraw.Draw(sheet)

    def put(arr, r, c, label=None):
        tile = Image.fromarray(images.to_uint8(arr))
        tile.thumbnail((cell, cell), Image.Resampling.LANCZOS)
        x = gap + c * (cell + gap) + (cell - tile.width) // 2
        y = gap + r * (cell + gap) + (cell - tile.height) // 2
        sheet.paste(tile, (x, y))
        if label:
            draw.text((x + 3, y + 2), label, fill="white", stroke_width=2, stroke_fill="black")

    content_names, style_names = labels if labels else ([None] * len(contents), [None] * len(styles))
    for j, style in enumerate(styles):
        put(style, 0, j + 1, style_names[j])
    for i, content in enumerate(contents):
        put(content, i + 1, 0, content_names[i])
        for j, result in enumerate(results[i]):
            put(result, i + 1, j + 1)
    return np.asarray(sheet)


def run_demo(args) -> int:
    _check_numbers(args)
    out = Path(args.output).expanduser()
    if out.suffix.lower() not in images.SAVE_FORMATS:
        raise images.ImageError(out, f"unsupported output extension {out.suffix!r}; use .png, .jpg or .webp")
    images.check_writable(out)
    contents = [images.resize_long(skimage_sample(n), args.size) for n in args.contents]
    styles = [skimage_sample(n) for n in args.styles]
    stylizer = make_stylizer(args)
    vectors = stylizer.embed(styles)
    results = []
    with Progress(len(contents) * len(styles), desc="demo", unit="image") as bar:
        for content in contents:
            emb = stylizer.apply_strength(vectors, content, args.strength)
            results.append(stylizer.stylize_arrays(content, emb))
            bar.update(len(styles))
    sheet = contact_sheet(contents, [images.resize_short(s, args.size) for s in styles], results, cell=args.size,
                          labels=(args.contents, args.styles))
    images.save_image(sheet, out, quality=args.quality)
    print(f"wrote {out} ({len(contents)} contents x {len(styles)} styles, model {args.model})")
    return 0
