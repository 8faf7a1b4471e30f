"""Run the transformer on images of any size: jitted, with a compile counter, untiled or tiled *exactly*.

Conditional instance norm normalises each channel by its mean and variance over the whole image, so stylizing
tiles independently gives seams and colour shifts. The exact tiled forward works stage by stage and keeps only
the quarter-resolution residual stream of the whole image in memory (c3 channels at H/4 x W/4: 134 MB for a
4096^2 content with the mobile model), never a full-resolution feature map:

1. contract (batch norm with fixed statistics, nothing global): full-resolution tiles with a small halo give
   the whole-image residual stream;
2. each residual block: tiles of the stream, with a halo of a few quarter-resolution pixels, accumulate the
   moments of conv1's pre-norm activations over their interiors (float64, Chan's merge); the same again for
   conv2 using conv1's whole-image statistics; then a pass applies both and writes the block's output stream;
3. expand: passes from the final stream collect the three expand layers' statistics in turn, and a last pass
   writes each tile's full-resolution interior.

Halos cover each stage's receptive field, tiles sit on the network's stride grid, and every window of a pass has
one shape, so each pass compiles once. The result equals the untiled forward up to float rounding.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from arbstyle.inference.stylize_defaults import DEFAULT_TILE
from arbstyle.nets import SIZE_MULTIPLE

# Halos, from each stage's receptive field. Contract: the 9x9 conv (4) + two stride-2 3x3 convs (1 + 2) + the
# offset inside a 4 x 4 cell (3) = 10 full-resolution pixels -> 16. A residual block: two 3x3 convs = 2 stream
# (quarter-resolution) pixels -> 4. Expand: the 3x3 at half resolution (0.5), the 3x3 and 9x9 at full resolution
# (0.25 + 1) = 1.75 stream pixels -> 4. tests/test_tiling.py checks exactness with them, and that too small
# halos are caught.
CONTRACT_HALO = 16
STREAM_HALO = 4
STREAM_SCALE = 4  # the residual stream is at 1/4 of the input resolution
DTYPES = {"fp32": jnp.float32, "bf16": jnp.bfloat16}

# XLA's CPU runtime aborts the whole process (std::bad_alloc, no Python exception) when one allocation exceeds
# about 2 GiB, however much memory is free: with magenta-mobile, the contract stage alone fails at 5120^2 and the
# last 9x9 conv at 4608^2. So the decision to tile looks at the largest single buffer, not only at the total.
CPU_MAX_BUFFER = 2 * 2**30
# The convolution kernels allocate workspace that the compiled HLO does not show. Measured with magenta-mobile:
# the largest HLO array is 64 bytes per content pixel (16 channels at full resolution) and the first abort comes
# at 21.2 MP (101 bytes per pixel against the 2 GiB limit), so twice the largest HLO array bounds the real one.
WORKSPACE_FACTOR = 2
MAX_BUFFER_ENV = "ARBSTYLE_MAX_BUFFER"
_HLO_ARRAY = re.compile(r"\b(pred|s8|u8|s16|u16|bf16|f16|s32|u32|f32|s64|u64|f64)\[([\d,]*)\]")
_ITEM_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "bf16": 2, "f16": 2, "s32": 4, "u32": 4, "f32": 4,
               "s64": 8, "u64": 8, "f64": 8}


def parse_bytes(text: str) -> int:
    """'2G', '512K', '3000000' -> bytes (binary units)."""
    text = str(text).strip().upper().removesuffix("IB").removesuffix("B")
    scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(text[-1:], 1)
    number = float(text[:-1] if scale > 1 else text)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"expected a positive size such as 2G or 512M, got {text!r}")
    return int(number * scale)


def default_max_buffer() -> int | None:
    """The largest single buffer one compiled program may need: $ARBSTYLE_MAX_BUFFER, else 2 GiB on XLA's CPU
    backend, else no per-buffer limit (accelerators are bounded by the total budget alone)."""
    if os.environ.get(MAX_BUFFER_ENV):
        return parse_bytes(os.environ[MAX_BUFFER_ENV])
    return CPU_MAX_BUFFER if jax.default_backend() == "cpu" else None


@dataclass(frozen=True)
class Footprint:
    """Memory of one compiled forward: its largest single buffer (workspace included) and its total."""

    largest: int
    total: int


def footprint_of(compiled) -> Footprint:
    """The Footprint of a compiled forward (`jax.stages.Compiled`); compiling allocates nothing, so any size is
    safe to ask about."""
    memory = compiled.memory_analysis()
    total = sum(int(getattr(memory, key, 0) or 0) for key in (
        "argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes")) if memory else 0
    largest = WORKSPACE_FACTOR * largest_hlo_array(compiled.as_text())
    return Footprint(largest, max(total, largest))


def largest_hlo_array(hlo_text: str) -> int:
    """Bytes of the largest array any instruction of a compiled HLO module produces or takes."""
    best = 0
    for kind, dims in _HLO_ARRAY.findall(hlo_text):
        best = max(best, _ITEM_BYTES[kind] * math.prod(int(d) for d in dims.split(",") if d))
    return best


@dataclass(frozen=True)
class Span:
    """One tile along one axis: the window [start, start + length) and the interior [lo, hi) it is trusted on."""

    start: int
    length: int
    lo: int
    hi: int


def spans(size: int, tile: int, halo: int, grid: int = SIZE_MULTIPLE) -> list[Span]:
    """Cover [0, size) with interiors of at most `tile`, each inside a window of one common length.

    `size`, `tile` and `halo` are multiples of `grid` (the network's stride grid for input pixels, 1 for the
    stream). The interiors are balanced (4096 with tile 1500 gives three of 1368, not 1500 + 1500 + 1096) to
    waste the least work on halos. A window is clamped to the image rather than shrunk, so windows at the borders
    start or end exactly on the image edge (where the network's own reflect padding applies) and every interior
    pixel has at least `halo` pixels of real context.
    """
    for name, value in (("size", size), ("tile", tile), ("halo", halo)):
        if value % grid:
            raise ValueError(f"{name}={value} must be a multiple of {grid}")
    if tile < 1:
        raise ValueError(f"tile must be positive, got {tile}")
    if size <= tile + 2 * halo:  # the whole axis fits in one window of the requested size
        return [Span(0, size, 0, size)]
    count = math.ceil(size / tile)
    tile = math.ceil(size / count / grid) * grid
    length = min(size, tile + 2 * halo)
    out = []
    for lo in range(0, size, tile):
        hi = min(size, lo + tile)
        start = min(max(0, lo - halo), size - length)
        out.append(Span(start, length, lo, hi))
    return out


def cast_floats(tree, dtype):
    return jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


class TransformerRunner:
    """Jitted forward of a `Transformer` (put in inference mode first) with optional exact tiling.

    `traces` counts how many times the forward was traced, i.e. compiled: one per distinct input shape and pass.
    """

    def __init__(self, transformer, *, precision: str = "fp32"):
        from flax import nnx  # here, not at the top: stored programs run the untiled forward without Flax

        if precision not in DTYPES:
            raise ValueError(f"precision must be one of {sorted(DTYPES)}, got {precision!r}")
        self.dtype = DTYPES[precision]
        self.names = [name for name, _ in transformer.cin_layers]
        self.stages = list(transformer.STAGES)
        graphdef, state = nnx.split(transformer)
        self._graphdef = graphdef
        self._state = cast_floats(state, self.dtype)
        self.traces = 0
        self._forward = jax.jit(self._forward_impl, static_argnames=("stop_at", "start_at", "moments"))
        self._untiled: dict[tuple, tuple] = {}  # input shape -> (compiled forward, Footprint)

    # ------------------------------------------------------------------ jitted core

    def _forward_impl(self, state, x, style, stats, box, *, stop_at, start_at, moments):
        from flax import nnx

        self.traces += 1  # runs only while tracing
        transformer = nnx.merge(self._graphdef, state)
        style = cast_floats(style, self.dtype)
        y = transformer(x.astype(self.dtype), style, stats=stats, stop_at=stop_at, start_at=start_at)
        if moments:
            return _interior_moments(y.astype(jnp.float32), x.shape[1], x.shape[2], box)
        return y.astype(jnp.float32)

    def untiled(self, state, x, style):
        """The untiled forward as a pure function of (state, content, style), for `jax.export`."""
        return self._forward_impl(state, x, style, None, jnp.zeros(4, jnp.int32), stop_at=None, start_at=None,
                                  moments=False)

    @property
    def state(self):
        """The transformer's variables as the forward takes them (cast to the precision)."""
        return self._state

    def __call__(self, content, style: dict) -> np.ndarray:
        """Untiled forward: content (B, H, W, 3) float in [0, 1], style: CIN parameters -> (B, H, W, 3)."""
        compiled, _ = self.untiled_program(tuple(np.shape(content)), style)
        return compiled(self._state, jnp.asarray(content, jnp.float32), style)

    def footprint(self, shape: tuple[int, ...], style: dict) -> Footprint:
        """Memory the untiled forward of a (B, H, W, 3) content would take, read from its compiled program.

        Compiling allocates nothing, so this is safe for any size; the program is kept for the run that follows.
        """
        return self.untiled_program(tuple(shape), style)[1]

    def untiled_program(self, shape: tuple[int, ...], style: dict) -> tuple:
        """(compiled forward of (state, content, style), Footprint) for (B, H, W, 3) contents, kept per shape."""
        if shape not in self._untiled:
            x = jax.ShapeDtypeStruct(shape, jnp.float32)
            compiled = jax.jit(self.untiled).lower(self._state, x, style).compile()
            self._untiled[shape] = (compiled, footprint_of(compiled))
        return self._untiled[shape]

    def _run(self, x, style, stats, *, stop_at=None, start_at=None, box=None):
        moments = box is not None
        box = jnp.asarray(box if moments else (0, 0, 0, 0), jnp.int32)
        return self._forward(self._state, jnp.asarray(x), style, stats, box, stop_at=stop_at, start_at=start_at,
                             moments=moments)

    # ------------------------------------------------------------------ exact tiling

    def tiled(self, content, style: dict, *, tile: int = DEFAULT_TILE, contract_halo: int = CONTRACT_HALO,
              stream_halo: int = STREAM_HALO, progress: bool = False) -> np.ndarray:
        """Exact tiled forward; equals `self(content, style)` up to float rounding, in bounded memory.

        tile: largest interior side in input pixels. The halos default to the receptive fields (see above).
        """
        content = np.asarray(content, np.float32)
        batch, height, width, _ = content.shape
        # The untiled network reflect-pads to its stride grid before anything else: do the same up front.
        pad_h, pad_w = -height % SIZE_MULTIPLE, -width % SIZE_MULTIPLE
        if pad_h or pad_w:
            content = np.pad(content, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
        tile = max(SIZE_MULTIPLE, tile // SIZE_MULTIPLE * SIZE_MULTIPLE)
        k = STREAM_SCALE
        big = _grid(spans(content.shape[1], tile, contract_halo), spans(content.shape[2], tile, contract_halo))
        small = _grid(spans(content.shape[1] // k, tile // k, stream_halo, grid=1),
                      spans(content.shape[2] // k, tile // k, stream_halo, grid=1))
        blocks = [s for s in self.stages if s.startswith("residual")]
        total_passes = len(big) + len(small) * (3 * len(blocks) + 4)
        bar = tqdm(total=total_passes, desc="tiled passes", unit="tile", disable=not progress, leave=False)

        def stream_pass(source, factor, start_at, stop_at, windows, stats):
            """Run every window and paste its interior into a new whole-image array at `factor` x the source."""
            out = None
            for r, c in windows:
                y = np.asarray(self._run(source[:, r.start:r.start + r.length, c.start:c.start + c.length], style,
                                         stats, stop_at=stop_at, start_at=start_at))
                if out is None:
                    shape = (batch, int(source.shape[1] * factor), int(source.shape[2] * factor), y.shape[-1])
                    out = np.empty(shape, np.float32)
                lo_r, hi_r = int((r.lo - r.start) * factor), int((r.hi - r.start) * factor)
                lo_c, hi_c = int((c.lo - c.start) * factor), int((c.hi - c.start) * factor)
                out[:, int(r.lo * factor):int(r.hi * factor), int(c.lo * factor):int(c.hi * factor)] = \
                    y[:, lo_r:hi_r, lo_c:hi_c]
                bar.update()
            return out

        def statistics(source, start_at, name, stats):
            total = None
            for r, c in small:
                box = (r.lo - r.start, r.hi - r.start, c.lo - c.start, c.hi - c.start)
                part = self._run(source[:, r.start:r.start + r.length, c.start:c.start + c.length], style,
                                 dict(stats), stop_at=name, start_at=start_at, box=box)
                total = _merge(total, jax.device_get(part))
                bar.update()
            count, mean, m2 = total
            stats[name] = (jnp.asarray(mean, jnp.float32), jnp.asarray(m2 / count, jnp.float32))

        stats: dict = {}
        stream = stream_pass(content, 1 / k, None, blocks[0], big, None)
        for i, block in enumerate(blocks):
            for name in (f"{block}/conv1", f"{block}/conv2"):
                statistics(stream, block, name, stats)
            following = blocks[i + 1] if i + 1 < len(blocks) else self.stages[len(blocks) + 1]
            stream = stream_pass(stream, 1, block, following, small, dict(stats))
        first_expand = self.stages[len(blocks) + 1]
        for name in [n for n in self.names if n.startswith("expand")]:
            statistics(stream, first_expand, name, stats)
        out = stream_pass(stream, k, first_expand, None, small, stats)
        bar.close()
        return out[:, :height, :width]

    # ------------------------------------------------------------------ statistics shared by a batch

    def pooled(self, content, style: dict) -> np.ndarray:
        """Forward of a batch (the frames of a clip's window) in which every CIN layer normalises with mean and
        variance pooled over the whole batch instead of each image's own, so that frames of one window share
        their statistics. The moments are accumulated exactly as for tiling, one stage at a time.
        """
        content = np.asarray(content, np.float32)
        batch, height, width, _ = content.shape
        pad_h, pad_w = -height % SIZE_MULTIPLE, -width % SIZE_MULTIPLE
        if pad_h or pad_w:
            content = np.pad(content, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
        blocks = [s for s in self.stages if s.startswith("residual")]
        stats: dict = {}

        def statistics(source, start_at, name):
            box = (0, source.shape[1], 0, source.shape[2])
            count, mean, m2 = jax.device_get(self._run(source, style, dict(stats), stop_at=name,
                                                        start_at=start_at, box=box))
            total = None
            for i in range(batch):  # every frame is one more "tile" of the pooled statistics
                total = _merge(total, (count, mean[i:i + 1], m2[i:i + 1]))
            count, mean, m2 = total
            stats[name] = (jnp.asarray(np.broadcast_to(mean, (batch, mean.shape[-1])), jnp.float32),
                           jnp.asarray(np.broadcast_to(m2 / count, (batch, m2.shape[-1])), jnp.float32))

        stream = self._run(content, style, None, stop_at=blocks[0])
        for i, block in enumerate(blocks):
            for name in (f"{block}/conv1", f"{block}/conv2"):
                statistics(stream, block, name)
            following = blocks[i + 1] if i + 1 < len(blocks) else self.stages[len(blocks) + 1]
            stream = self._run(stream, style, dict(stats), start_at=block, stop_at=following)
        first_expand = self.stages[len(blocks) + 1]
        for name in [n for n in self.names if n.startswith("expand")]:
            statistics(stream, first_expand, name)
        out = self._run(stream, style, stats, start_at=first_expand)
        return np.asarray(out)[:, :height, :width]


def _grid(rows: list[Span], cols: list[Span]) -> list[tuple[Span, Span]]:
    return [(r, c) for r in rows for c in cols]


def _interior_moments(y, window_h: int, window_w: int, box):
    """Count, per-channel mean and sum of squared deviations of y (B, h, w, C) over the box's interior.

    The box is in window pixels; y may be at 1/4 to 4x the window's resolution. The box is dynamic
    (a mask, not a slice) so that every tile of a pass shares one compiled function.
    """
    # centre of each activation pixel in window coordinates (y may be coarser or finer than the window)
    rows = (jnp.arange(y.shape[1]) + 0.5) * (window_h / y.shape[1])
    cols = (jnp.arange(y.shape[2]) + 0.5) * (window_w / y.shape[2])
    mask = ((rows >= box[0]) & (rows < box[1]))[:, None] & ((cols >= box[2]) & (cols < box[3]))[None, :]
    mask = mask[None, :, :, None].astype(jnp.float32)
    count = jnp.sum(mask)
    mean = jnp.sum(y * mask, axis=(1, 2)) / count
    m2 = jnp.sum(jnp.square((y - mean[:, None, None, :]) * mask), axis=(1, 2))
    return count, mean, m2


def _merge(total, part):
    """Chan et al.'s parallel merge of (count, mean, M2), in float64 so that 16 MP images lose nothing."""
    count_b, mean_b, m2_b = (np.float64(part[0]), np.asarray(part[1], np.float64), np.asarray(part[2], np.float64))
    if total is None:
        return count_b, mean_b, m2_b
    count_a, mean_a, m2_a = total
    count = count_a + count_b
    delta = mean_b - mean_a
    return count, mean_a + delta * (count_b / count), m2_a + m2_b + np.square(delta) * (count_a * count_b / count)


def tile_count(height: int, width: int, tile: int = DEFAULT_TILE, halo: int = CONTRACT_HALO) -> int:
    """Windows per full-resolution pass for a content of this size."""
    h, w = math.ceil(height / SIZE_MULTIPLE) * SIZE_MULTIPLE, math.ceil(width / SIZE_MULTIPLE) * SIZE_MULTIPLE
    return len(spans(h, tile, halo)) * len(spans(w, tile, halo))
