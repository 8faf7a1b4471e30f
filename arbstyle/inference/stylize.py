"""The Python API: `Stylizer.load("magenta-mobile").stylize(photo, painting)`.

A Stylizer wraps one arbitrary-style model (style predictor + CIN heads + transformer) with jitted functions that
are compiled once per shape and reused: content sizes are rounded up to a small ladder of buckets (reflect-padded,
cropped back) so that a folder of mixed sizes compiles a handful of times; contents whose untiled program would
need a buffer over the backend's per-buffer limit, or more than the memory budget, go through the exact tiled
forward of `arbstyle.inference.tiling`, in bounded memory.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from arbstyle import images
from arbstyle.inference.stylize_defaults import (ACTIVATIONS, DEFAULT_ACTIVATIONS, DEFAULT_MODEL, DEFAULT_TILE,
                                                 STYLE_SIZE)
from arbstyle.inference.programs import Part, open_store
from arbstyle.inference.tiling import (CONTRACT_HALO, DTYPES, Footprint, TransformerRunner, default_max_buffer,
                                      footprint_of)
from arbstyle.nets import SIZE_MULTIPLE

# Untiled forwards (batch x pixels) may use this share of physical memory; beyond it, exact tiling.
MEMORY_FRACTION = 0.4
MIN_TILE = 16  # smallest tile side fitted under the per-buffer limit (a multiple of the stream's 4 x stride grid)
MAX_BATCH = 8  # larger batches of one content gain nothing on a CPU
STEPS_PER_OCTAVE = 8  # size buckets: padding is at most 1/8 of a side


def _pretrained_config(name: str) -> dict:
    from arbstyle.weights import pretrained

    return dict(pretrained.model_config(name) or {})


def tiled_bytes_per_pixel(alpha: float) -> int:
    """Memory of the tiled forward per content pixel: the float32 content and result (12 + 12 bytes), a resize or
    8-bit copy on the way in or out (12), and two whole-image residual streams (c3 float32 channels at 1/16 of
    the pixels each). The tiles themselves are bounded separately."""
    return 36 + 2 * 4 * int(128 * alpha) // 16


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def bucket_side(side: int) -> int:
    """Round a side up to the bucket ladder: multiples of 2**(floor(log2 side) - 3), and of the stride grid.

    Eight buckets per octave (..., 256, 288, ..., 480, 512, 576, ..., 960, 1024, 1152, ...) keep the reflect
    padding under 12.5% of a side while a folder of photos of assorted sizes compiles a handful of shapes.
    """
    if side <= 32:
        return -(-side // SIZE_MULTIPLE) * SIZE_MULTIPLE
    step = max(SIZE_MULTIPLE, 2 ** (int(math.log2(side)) - int(math.log2(STEPS_PER_OCTAVE))))
    return -(-side // step) * step


def _is_embedding(style) -> bool:
    return isinstance(style, (np.ndarray, jax.Array)) and np.ndim(style) == 1


def is_cin(style) -> bool:
    """A style given as CIN parameters: {layer: (gamma, beta)}, each (C,) for one style or (N, C) for N."""
    return isinstance(style, dict)


def stack_cin(styles) -> dict:
    """CIN dicts of single styles {layer: ((C,), (C,))} -> one batch {layer: ((N, C), (N, C))}."""
    return {k: (np.stack([np.asarray(s[k][0], np.float32) for s in styles]),
                np.stack([np.asarray(s[k][1], np.float32) for s in styles])) for k in styles[0]}


def cin_count(styles) -> int:
    """How many styles a batch holds: rows of an (N, D) embedding array or of a batched CIN dict."""
    return len(next(iter(styles.values()))[0]) if is_cin(styles) else len(styles)


def mix_cin(styles: dict, weights=None) -> dict:
    """Weighted mean of a batch of CIN parameters -> one style {layer: ((C,), (C,))}; weights are normalised.

    Dumoulin et al. 2017 mix styles as convex combinations of gamma and beta."""
    w = mix_weights(cin_count(styles), weights)
    return {k: (w @ g, w @ b) for k, (g, b) in styles.items()}


def mix_weights(count: int, weights=None) -> np.ndarray:
    """Weights of a style mix, normalised to sum to 1 (None: equal); checked to be non-negative."""
    w = np.ones(count) if weights is None else np.asarray(weights, np.float64)
    if w.shape != (count,) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"need {count} non-negative style weights with a positive sum, got {weights}")
    return (w / w.sum()).astype(np.float32)


STYLE_KINDS = ("embedding", "cin")


def save_styles(path, names, styles, *, model: str) -> None:
    """Write styles atomically to an .npz that loads without pickle: `names` (N,), `kind`, `model`, and either
    `embeddings` (N, D) float32 (kind "embedding", what `arbstyle embed` writes) or, for CIN dicts (kind
    "cin"), `layers` (L,) and `gamma_<i>` / `beta_<i>` (N, C_i) per CIN layer in the transformer's order."""
    from pathlib import Path

    path = Path(path)
    names = [str(n) for n in names]
    if len(names) != len(styles) or not names:
        raise ValueError(f"{len(names)} names for {len(styles)} styles")
    if all(is_cin(s) for s in styles):
        batch = stack_cin(styles)
        layers = list(batch)
        arrays = {"kind": np.asarray("cin"), "layers": np.asarray(layers, dtype=str)}
        for i, k in enumerate(layers):
            arrays[f"gamma_{i}"], arrays[f"beta_{i}"] = batch[k]
    elif not any(is_cin(s) for s in styles):
        arrays = {"kind": np.asarray("embedding"), "embeddings": np.stack([np.asarray(s, np.float32) for s in styles])}
    else:
        raise ValueError("one file holds either embeddings or CIN parameters, not both")
    path.parent.mkdir(parents=True, exist_ok=True)
    images.remove_stale_temps(path)
    fd, tmp = images.temp_file(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, names=np.asarray(names, dtype=str), model=np.asarray(str(model), dtype=str), **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        tmp = None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def load_styles(path) -> tuple[dict, dict]:
    """An `arbstyle embed` / `arbstyle learn` file -> ({name: (D,) embedding or CIN dict}, {"model", "kind"}).

    Read with allow_pickle=False; raises ValueError naming the file for anything malformed."""
    try:
        with np.load(path, allow_pickle=False) as data:
            names = [str(n) for n in data["names"]]
            meta = {"model": str(data["model"]) if "model" in data else None,
                    "kind": str(data["kind"]) if "kind" in data else "embedding"}
            if meta["kind"] == "embedding":
                vectors = np.asarray(data["embeddings"], np.float32)
                ok = vectors.ndim == 2 and len(vectors) == len(names) and np.isfinite(vectors).all()
                styles = dict(zip(names, vectors)) if ok else None
                shape = vectors.shape
            elif meta["kind"] == "cin":
                layers = [str(n) for n in data["layers"]]
                batch = {k: (np.asarray(data[f"gamma_{i}"], np.float32), np.asarray(data[f"beta_{i}"], np.float32))
                         for i, k in enumerate(layers)}
                ok = all(g.ndim == 2 and g.shape == b.shape and len(g) == len(names)
                         and np.isfinite(g).all() and np.isfinite(b).all() for g, b in batch.values())
                styles = ({n: {k: (g[j], b[j]) for k, (g, b) in batch.items()} for j, n in enumerate(names)}
                          if ok else None)
                shape = (len(layers), "layers")
            else:
                raise ValueError(f"unknown kind {meta['kind']!r} (known: {', '.join(STYLE_KINDS)})")
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"{path}: not an arbstyle styles file (.npz with names and embeddings or CIN "
                         f"parameters): {err}") from None
    if styles is None or len(styles) != len(names):
        raise ValueError(f"{path}: malformed styles (names {len(names)}, arrays {shape})")
    return styles, meta


def _as_array(image, *, max_side=None) -> np.ndarray:
    if isinstance(image, (str, os.PathLike)):
        return images.load_image(image, max_side=max_side)
    return images.to_float32(image)


def preserve_colors(stylized: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Luminance-only transfer (Gatys et al. 2016): the stylized image's luma with the content's chroma (BT.601)."""
    def luma(rgb):
        return rgb @ np.asarray([0.299, 0.587, 0.114], np.float32)

    # RGB = Y + (RGB - Y) keeps chroma exactly: take the content's colour difference, the stylized luma.
    out = content - luma(content)[..., None] + luma(stylized)[..., None]
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def style_input(style, size: int = STYLE_SIZE) -> np.ndarray:
    """A style image as the predictor sees it: the centred square, resized to `size`.

    A square input means one compiled predictor for every style, whatever its aspect ratio. Cropping before
    resizing keeps memory at the square's size for any aspect ratio (a 100000 x 8 strip is an 8 x 8 square).
    """
    size = int(size)
    if isinstance(style, (str, os.PathLike)):
        return images.load_image(style, square=size)
    return images.resize_to(images.center_square(images.to_float32(style)), (size, size))


class Stylizer:
    """Arbitrary style transfer with one model. Thread-compatible, not thread-safe.

    precision: "fp32" or "bf16" for the transformer (the predictor runs in fp32: it runs once per style).
    style_size: side the style image is resized (short side) and centre-cropped to before embedding.
    tile: largest tile interior side for tiled inference.
    memory_budget: bytes an untiled forward may use (default: 40% of physical memory); contents whose untiled
    forward would need more are tiled, and batches of styles are split to stay under it.
    max_buffer: the largest single buffer a compiled forward may allocate (default: 2 GiB on XLA's CPU backend,
    whose runtime aborts beyond it; $ARBSTYLE_MAX_BUFFER overrides). Both limits are checked against the
    compiled program of the content's shape, and tiles are shrunk to fit them.
    tile_above: instead of the compiled program's footprint, tile every content above this many pixels (0: always).
    bucket: round content sizes up to the bucket ladder (fewer compilations; output cropped back to size).
    programs: instead of a model, a `programs.ProgramStore` of a pretrained one (`Stylizer.load(..., programs=True)`):
    the predictor, heads and untiled transformer then run as stored programs, and the network is built on first
    need (a missing program, tiling, pooled statistics).
    """

    def __init__(self, model=None, *, precision: str = "fp32", style_size: int = STYLE_SIZE,
                 tile: int = DEFAULT_TILE, memory_budget: int | None = None, max_buffer: int | None = None,
                 tile_above: int | None = None, bucket: bool = True, name: str | None = None, programs=None):
        if model is None and programs is None:
            raise TypeError("Stylizer needs a model, or stored programs (arbstyle.inference.programs)")
        config = dict(model.config) if model is not None else programs.config
        if not (getattr(model, "arbitrary", False) if model is not None else config["predictor"] != "table"):
            raise TypeError("Stylizer needs an arbitrary-style model (with a style predictor)")
        if precision not in DTYPES:
            raise ValueError(f"precision must be one of {sorted(DTYPES)}, got {precision!r}")
        if config.get("quantize_activations") and precision != "fp32":
            raise ValueError("exact (quantized) activations run in fp32 only; use activations='float' for bf16")
        if model is not None:
            model.eval()  # batch norm with moving statistics
        self._model = model
        self._programs = programs  # None: trace the network in this process
        self._runner = None
        self.config = config
        self.name = name
        self.style_size = int(style_size)
        self.tile = int(tile)
        self.bucket = bucket
        self.memory_budget = int(memory_budget or MEMORY_FRACTION * physical_memory())
        self.max_buffer = int(max_buffer or default_max_buffer() or 2**62)
        self.tiled_bytes_per_pixel = tiled_bytes_per_pixel(config["alpha"])
        self.tile_above = None if tile_above is None else int(tile_above)
        self.precision = precision
        self._embed_traces = 0
        self.embedding_dim = int(config["embedding_dim"])

    @property
    def model(self):
        """The network (built on first use when the stylizer runs stored programs)."""
        if self._model is None:
            self._model = self._programs.build_model()
            self._model.eval()
        return self._model

    @property
    def runner(self) -> TransformerRunner:
        """The transformer's jitted forwards, untiled, tiled and pooled."""
        if self._runner is None:
            self._runner = TransformerRunner(self.model.transformer, precision=self.precision)
        return self._runner

    @functools.cached_property
    def _predictor(self) -> Part:
        predictor = self.model.predictor  # first: building the model imports flax the fast way
        from flax import nnx

        graphdef, state = nnx.split(predictor)

        def embed(state, x):
            self._embed_traces += 1  # runs only while tracing
            return nnx.merge(graphdef, state)(x)

        return Part(embed, state, "predictor/")

    @functools.cached_property
    def _heads(self) -> Part:
        heads = self.model.heads
        from flax import nnx

        graphdef, state = nnx.split(heads)
        return Part(lambda state, e: nnx.merge(graphdef, state)(e), state, "heads/")

    def _transformer(self) -> Part:
        return Part(self.runner.untiled, self.runner.state, "transformer/")

    def _call(self, name: str, *inputs):
        """The "predictor" or the CIN "heads" on inputs: a stored program, or traced here."""
        if self._programs is not None:
            def run():
                return self._programs.program(name, inputs, lambda: getattr(self, "_" + name))(*inputs)
            # A painting is often used again (one style over many photos, run by run); its embedding is kept.
            return self._programs.remembered(name, inputs, run) if name == "predictor" else run()
        part = getattr(self, "_" + name)
        return part.jitted(part.state, *inputs)

    def _untiled(self, shape: tuple[int, ...], style) -> tuple:
        """(forward of (content, style), Footprint) of the untiled transformer for (B, H, W, 3) contents."""
        if self._programs is None:
            compiled, footprint = self.runner.untiled_program(shape, style)
            state = self.runner.state
            return (lambda x, style: compiled(state, x, style)), footprint
        x = jax.ShapeDtypeStruct(shape, jnp.float32)
        style = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), style)
        program = self._programs.program("transformer", (x, style), self._transformer,
                                         describe=lambda c: {"footprint": dataclasses.asdict(footprint_of(c))})
        return program, Footprint(**program.meta["footprint"])

    def _forward(self, content, style) -> np.ndarray:
        """The untiled forward of contents (B, H, W, 3) with CIN parameters `style`."""
        forward, _ = self._untiled(tuple(np.shape(content)), style)
        return np.asarray(forward(np.asarray(content, np.float32), style))

    @classmethod
    def load(cls, name_or_path: str = DEFAULT_MODEL, *, activations: str = DEFAULT_ACTIVATIONS,
             programs: bool = False, **kwargs) -> "Stylizer":
        """A model from the registry: a pretrained name such as "magenta-mobile", or a training workdir.

        activations (imported int8 models only): "float" runs the imported weights with float activations
        (fast, tileable); "exact" replays the int8 graph's activation quantization bit for bit like
        onnxruntime, about 8x slower on CPU and untileable. Trained checkpoints are float.
        programs: run a pretrained model through stored programs (`arbstyle.inference.programs`), building the
        network only where one is missing: what a short-lived process such as the command line wants.
        """
        from arbstyle.weights import registry

        if activations not in ACTIVATIONS:
            raise ValueError(f"activations must be one of {ACTIVATIONS}, got {activations!r}")
        overrides = {}
        if str(name_or_path) in registry.names():
            base = _pretrained_config(str(name_or_path))
            if base.get("quantize_activations"):
                overrides["quantize_activations"] = activations == "exact"
        if activations == "exact" and not overrides.get("quantize_activations"):
            raise ValueError(f"{name_or_path}: exact activations exist only for imported int8 models")
        if programs:
            store = open_store(str(name_or_path), overrides, kwargs.get("precision", "fp32"))
            if store is not None:
                return cls(programs=store, name=str(name_or_path), **kwargs)
        return cls(registry.load_model(name_or_path, **overrides), name=str(name_or_path), **kwargs)

    @property
    def exact(self) -> bool:
        """Whether the model replays an int8 graph's activation quantization (no tiling, no bf16)."""
        return bool(self.config.get("quantize_activations"))

    @property
    def compile_count(self) -> int:
        """How many times the transformer and predictor have been compiled (traced) so far."""
        return (self._runner.traces if self._runner is not None else 0) + self._embed_traces

    # ------------------------------------------------------------------ styles

    def style_input(self, style, size: int | None = None) -> np.ndarray:
        return style_input(style, size or self.style_size)

    def embed(self, style, *, size: int | None = None) -> np.ndarray:
        """Style embedding(s): one image (path, PIL, array) -> (D,); a list of them -> (N, D)."""
        if isinstance(style, (list, tuple)):
            if not style:
                return np.zeros((0, self.embedding_dim), np.float32)
            batch = np.stack([self.style_input(s, size) for s in style])
            return self._embed_batch(batch)
        return self._embed_batch(self.style_input(style, size)[None])[0]

    def _embed_batch(self, batch: np.ndarray) -> np.ndarray:
        # Fixed chunk sizes (1, 2, 4, 8) so that any number of styles compiles at most four times.
        out = []
        for start in range(0, len(batch), 8):
            chunk = batch[start:start + 8]
            n = len(chunk)
            padded = 1 << (n - 1).bit_length()
            if padded > n:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], padded - n, axis=0)])
            out.append(np.asarray(self._call("predictor", np.asarray(chunk, np.float32)))[:n])
        return np.concatenate(out).astype(np.float32)

    @staticmethod
    def mix(embeddings, weights=None) -> np.ndarray:
        """Weighted mean of style embeddings (K, D) -> (D,): style interpolation. Weights are normalised."""
        embeddings = np.asarray(embeddings, np.float32)
        return mix_weights(len(embeddings), weights) @ embeddings

    def cin(self, embeddings) -> dict:
        """CIN parameters of embeddings (N, D) through the model's heads: {layer: (gamma (N, C), beta (N, C))}."""
        out = self._call("heads", np.asarray(embeddings, np.float32))
        return {k: (np.asarray(g, np.float32), np.asarray(b, np.float32)) for k, (g, b) in out.items()}

    def style_batch(self, styles):
        """Styles (images, embeddings, CIN dicts) -> (N, D) embeddings, or a batched CIN dict if any is CIN."""
        if any(is_cin(s) for s in styles):
            cins = [s if is_cin(s) else {k: (g[0], b[0]) for k, (g, b) in self.cin(self._embedding_of(s)[None]).items()}
                    for s in styles]
            for c in cins:
                self._check_cin(c)
            return stack_cin(cins)
        return np.stack([self._embedding_of(s) for s in styles])

    def _check_cin(self, style: dict) -> None:
        want = {name: c for name, c in self.model.transformer.cin_layers}
        got = {k: np.shape(g)[-1] for k, (g, _) in style.items()}
        if got != want:
            raise ValueError(f"CIN parameters do not fit this model's transformer (layers and channels {want}, "
                             f"got {got})")

    def _embedding_of(self, style) -> np.ndarray:
        if _is_embedding(style):
            emb = np.asarray(style, np.float32)
            if emb.shape != (self.embedding_dim,):
                raise ValueError(f"a style embedding must have shape ({self.embedding_dim},), got {emb.shape}")
            return emb
        return self.embed(style)

    # ------------------------------------------------------------------ stylizing

    def prepare_content(self, content, *, content_size: int | None = None, max_size: int | None = None):
        """Content as float32 HxWx3 at its working size: short side `content_size`, long side at most `max_size`."""
        arr = _as_array(content, max_side=None if content_size else max_size)
        if content_size:
            scale = content_size / min(arr.shape[:2])
            self.check_size(round(arr.shape[0] * scale), round(arr.shape[1] * scale))  # before allocating it
            arr = images.resize_short(arr, content_size)
        if max_size and max(arr.shape[:2]) > max_size:
            arr = images.resize_long(arr, max_size)
        return arr

    def stylize(self, content, style, *, strength: float = 1.0, preserve_color: bool = False,
                content_size: int | None = None, max_size: int | None = None, work_size: int | None = None,
                tile: bool | None = None, progress: bool = False):
        """Stylize one content image with one style or a list of styles.

        content: path, PIL image or array (uint8, or float in [0, 1]). style: path, PIL image, image array, a
        (D,) embedding, CIN parameters {layer: (gamma (C,), beta (C,))} (`arbstyle learn --params cin`,
        `load_styles`), or a list of those (one batched call; returns a list). strength in [0, 1] interpolates
        from the content's own embedding (0) to the style's (1); for CIN parameters, gamma and beta are
        interpolated towards those of the content's own embedding. Returns a PIL image for a PIL content, else a
        float32 HxWx3 array in [0, 1]. work_size: run the network with the longer side at most this and upscale
        the result (faster, softer). tile: None decides by memory, True/False forces it.
        """
        many = isinstance(style, (list, tuple))
        styles = list(style) if many else [style]
        if not styles:
            return []
        arr = self.prepare_content(content, content_size=content_size, max_size=max_size)
        embeddings = self.apply_strength(self.style_batch(styles), arr, strength)
        outs = self.render(arr, embeddings, work_size=work_size, tile=tile, progress=progress)
        if preserve_color:
            outs = [preserve_colors(out, arr) for out in outs]
        if isinstance(content, Image.Image):
            outs = [Image.fromarray(images.to_uint8(out)) for out in outs]
        return outs if many else outs[0]

    def apply_strength(self, embeddings, content: np.ndarray, strength: float):
        """Ghiasi et al.'s identity interpolation towards the content's own embedding; for a batched CIN dict,
        of gamma and beta towards the CIN parameters of the content's own embedding."""
        if not 0.0 <= float(strength) <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        if strength >= 1.0:
            return embeddings
        s = float(strength)
        own = self.embed(content)
        if is_cin(embeddings):
            own_cin = self.cin(own[None])
            return {k: (s * g + (1.0 - s) * own_cin[k][0], s * b + (1.0 - s) * own_cin[k][1])
                    for k, (g, b) in embeddings.items()}
        return (s * embeddings + (1.0 - s) * own[None]).astype(np.float32)

    def render(self, content: np.ndarray, embeddings: np.ndarray, *, work_size: int | None = None,
               tile: bool | None = None, progress: bool = False) -> list[np.ndarray]:
        """`stylize_arrays` at a reduced working size when `work_size` is below the content's longer side, with
        the results upscaled (Lanczos) to the content's size.

        The upscaling runs on 8-bit values (3x faster than PIL's float path; the upscaled picture is soft
        anyway), so results at a reduced working size have 8-bit precision.
        """
        if not work_size or max(content.shape[:2]) <= work_size:
            return self.stylize_arrays(content, embeddings, tile=tile, progress=progress)
        small = images.resize_long(content, work_size)
        outs = self.stylize_arrays(small, embeddings, tile=tile, progress=progress)
        return [_upscale(out, (content.shape[1], content.shape[0])) for out in outs]

    def stylize_batch(self, frames: np.ndarray, embedding: np.ndarray, *, work_size: int | None = None,
                      shared_stats: bool = False) -> np.ndarray:
        """Several contents of one size (B, H, W, 3) float32 with one style (D,) -> (B, H, W, 3): the frames of
        a clip. shared_stats: normalise every CIN layer with statistics pooled over the batch (see
        `TransformerRunner.pooled`). Frames too large for an untiled pass go through the tiled forward one by one.
        """
        frames = np.asarray(frames, np.float32)
        count, height, width = frames.shape[:3]
        if work_size and max(height, width) > work_size:
            small = np.stack([images.resize_long(f, work_size) for f in frames])
            outs = self.stylize_batch(small, embedding, shared_stats=shared_stats)
            return np.stack([_upscale(out, (width, height)) for out in outs])
        if min(height, width) < images.MIN_SIDE:
            raise ValueError(f"frames are {width}x{height}; each side must be at least {images.MIN_SIDE}")
        embedding = np.asarray(embedding, np.float32)
        if self.needs_tiling(height, width):
            return np.stack([self.stylize_arrays(f, embedding[None])[0] for f in frames])
        padded = frames
        if self.bucket:
            bh, bw = bucket_side(height), bucket_side(width)
            padded = np.pad(frames, ((0, 0), (0, bh - height), (0, bw - width), (0, 0)), mode="reflect")
        style = self._call("heads", np.repeat(embedding[None], count, axis=0))
        y = self.runner.pooled(padded, style) if shared_stats else self._forward(padded, style)
        return y[:, :height, :width]

    def frames_per_batch(self, height: int, width: int) -> int:
        """Frames per network call: as many as the memory budget allows, at most MAX_BATCH on a CPU (larger
        batches gain nothing there) and 4x that on an accelerator; a power of two, so few shapes compile."""
        cap = MAX_BATCH if jax.default_backend() == "cpu" else 4 * MAX_BATCH
        footprint = self.footprint(*self.padded_shape(height, width))
        fits = min(self.memory_budget // max(1, footprint.total), self.max_buffer // max(1, footprint.largest))
        n = max(1, min(cap, fits))
        return 1 << (n.bit_length() - 1)

    def stylize_video(self, path_or_frames, style, *, strength: float = 1.0, preserve_color: bool = False,
                      max_size: int | None = None, work_size: int | None = None, temporal: str | None = None,
                      batch: int | None = None):
        """Stylize a clip, yielding float32 HxWx3 frames in [0, 1] one by one, in bounded memory.

        path_or_frames: a video file (any container FFmpeg reads) or an iterable of frames (arrays or PIL
        images of one size). style: as for `stylize`, one style. temporal: a mode of
        `arbstyle.inference.video.TEMPORAL_MODES` (default `arbstyle.inference.video.DEFAULT_TEMPORAL`). max_size caps
        the long side of the frames; work_size runs the network smaller and upscales.
        """
        from arbstyle.inference import video

        if isinstance(style, (list, tuple)):
            raise ValueError("stylize_video takes one style; mix several with Stylizer.mix(...)")
        if isinstance(path_or_frames, (str, os.PathLike)):
            from arbstyle.inference import video_io

            frames = video_io.read_frames(path_or_frames)
        else:
            frames = path_or_frames
        yield from video.stylize_stream(self, frames, self._embedding_of(style), strength=strength,
                                        preserve_color=preserve_color, max_size=max_size, work_size=work_size,
                                        temporal=temporal, batch=batch)

    def _cin_rows(self, styles, start: int, stop: int, pad_to: int | None = None) -> dict:
        """CIN parameters of styles[start:stop] (embeddings or a batched CIN dict), last row repeated to pad_to."""
        if is_cin(styles):
            chunk = {k: (g[start:stop], b[start:stop]) for k, (g, b) in styles.items()}
            n = stop - start
            if pad_to and pad_to > n:
                chunk = {k: tuple(np.concatenate([a, np.repeat(a[-1:], pad_to - n, axis=0)]) for a in gb)
                         for k, gb in chunk.items()}
            return {k: (np.asarray(g, np.float32), np.asarray(b, np.float32)) for k, (g, b) in chunk.items()}
        chunk = styles[start:stop]
        if pad_to and pad_to > len(chunk):
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad_to - len(chunk), axis=0)])
        return self._call("heads", np.asarray(chunk, np.float32))

    def stylize_arrays(self, content: np.ndarray, embeddings, *, tile: bool | None = None,
                       progress: bool = False) -> list[np.ndarray]:
        """The core: content float32 HxWx3 at working size, embeddings (N, D) or a batched CIN dict -> N float32
        HxWx3 outputs."""
        content = np.asarray(content, np.float32)
        height, width = content.shape[:2]
        if min(height, width) < images.MIN_SIDE:
            raise ValueError(f"content is {width}x{height}; each side must be at least {images.MIN_SIDE}")
        padded_shape = self.padded_shape(height, width)
        self.check_size(height, width)
        footprint = None
        if self.tile_above is not None and tile is None:
            use_tiles = height * width > self.tile_above
        else:
            footprint = self.footprint(*padded_shape)
            use_tiles = tile if tile is not None else self._over_limits(footprint)
        if use_tiles and self.exact:
            raise ValueError(f"a {width}x{height} content needs tiled inference, which exact (quantized) "
                             "activations do not support; use float activations (the default)")
        if use_tiles:
            tile_side = self.tile if footprint is None else self.fitting_tile(footprint, padded_shape)
            outs = []
            for i in range(cin_count(embeddings)):  # one at a time: tiling is for when memory is the limit
                style = self._cin_rows(embeddings, i, i + 1)
                outs.append(self.runner.tiled(content[None], style, tile=tile_side,
                                              progress=progress)[0])
            return outs
        padded = content
        if self.bucket:
            # reflect padding needs the pad to be smaller than the side; bucket_side keeps it under 1/8
            padded = np.pad(content, ((0, padded_shape[0] - height), (0, padded_shape[1] - width), (0, 0)),
                            mode="reflect")
        if footprint is None:
            footprint = self.footprint(*padded_shape)
        fits = min(self.memory_budget // max(1, footprint.total), self.max_buffer // max(1, footprint.largest))
        count = cin_count(embeddings)
        per_call = max(1, min(count, MAX_BATCH, fits))
        per_call = 1 << (per_call.bit_length() - 1)  # powers of two: few distinct batch shapes
        x = np.asarray(padded[None], np.float32)
        outs = []
        for start in range(0, count, per_call):
            n = min(per_call, count - start)
            style = self._cin_rows(embeddings, start, start + n, per_call)
            y = self._forward(np.broadcast_to(x, (per_call, *x.shape[1:])), style)
            outs.extend(y[i, :height, :width] for i in range(n))
        return outs

    # ------------------------------------------------------------------ memory

    def padded_shape(self, height: int, width: int) -> tuple[int, int]:
        return (bucket_side(height), bucket_side(width)) if self.bucket else (height, width)

    def needs_tiling(self, height: int, width: int) -> bool:
        """Whether `tile=None` tiles an HxW content: its untiled program's largest buffer is over `max_buffer`,
        or its total over `memory_budget` (or, with `tile_above`, its pixel count over that)."""
        if self.tile_above is not None:
            return height * width > self.tile_above
        return self._over_limits(self.footprint(*self.padded_shape(height, width)))

    def _over_limits(self, footprint) -> bool:
        return footprint.largest > self.max_buffer or footprint.total > self.memory_budget

    def footprint(self, height: int, width: int):
        """Largest buffer and total memory of the untiled forward of one HxW content, from its compiled program."""
        style = self._call("heads", np.zeros((1, self.embedding_dim), np.float32))
        return self._untiled((1, height, width, 3), style)[1]

    def fitting_tile(self, footprint, shape: tuple[int, int]) -> int:
        """The largest tile side, up to `self.tile`, whose windows stay under the per-buffer limit."""
        per_pixel = footprint.largest / (shape[0] * shape[1])
        window = math.isqrt(int(self.max_buffer / per_pixel))
        side = min(self.tile, (window - 2 * CONTRACT_HALO) // MIN_TILE * MIN_TILE)  # tiled() rounds self.tile
        if side < MIN_TILE:
            raise ValueError(f"even {MIN_TILE} px tiles exceed the per-buffer limit of {self.max_buffer} bytes")
        return side

    def check_size(self, height: int, width: int) -> None:
        """Refuse a working size that would not fit the memory budget even tiled (one line, before any work)."""
        need = height * width * self.tiled_bytes_per_pixel
        if need > self.memory_budget:
            raise ValueError(f"a {width}x{height} result needs about {need / 2**30:.1f} GiB even tiled, over the "
                             f"memory budget of {self.memory_budget / 2**30:.1f} GiB; use a smaller --content-size "
                             "or --max-size")


def _upscale(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return images.to_float32(Image.fromarray(images.to_uint8(image)).resize(size, Image.Resampling.LANCZOS))


def stylize(content, style, *, model: str = DEFAULT_MODEL, **kwargs):
    """One-shot convenience: `Stylizer.load(model).stylize(content, style, **kwargs)`."""
    return Stylizer.load(model).stylize(content, style, **kwargs)


__all__ = ["Stylizer", "bucket_side", "preserve_colors", "style_input", "stylize", "load_styles", "save_styles",
           "mix_cin", "DEFAULT_MODEL", "STYLE_SIZE"]
