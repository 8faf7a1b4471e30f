"""Run the transformer on images of any size: jitted, with a compile counter, untiled or tiled *exactly*.

Conditional instance norm normalises each channel by its mean and variance over the whole image, so stylizing
tiles independently gives seams and colour shifts. The exact tiled forward therefore learns every CIN layer's
whole-image statistics first, one layer at a time: pass k runs each tile (with a halo wide enough to cover the
network's receptive field) through the layers before k using the whole-image statistics already known for them,
stops at layer k's normalisation, and accumulates the pre-norm activations' moments over the tile's interior
(where the tile's values equal the whole image's). Once all layers are known, a last pass applies them per tile
and keeps each tile's interior. The result equals the untiled forward up to float rounding.

Tiles are cut on the network's stride grid (multiples of 4) and every window has the same shape, so each pass
compiles once. The contracting path uses batch norm with fixed moving statistics, which needs nothing of this.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from arbstyle.nets.transformer import SIZE_MULTIPLE

# Receptive-field radius of the transformer in input pixels, summed backwards from the output: 9x9 (4) +
# 3x3 (1) + x2 upsampling with a 3x3 at half resolution (2 + 2) + ten 3x3 convs at quarter resolution (40) +
# the two stride-2 3x3 convs (2 + 1) + the 9x9 input conv (4) = 56, plus nearest-neighbour rounding: 64 is safe
# and a multiple of the stride grid. tests/test_tiling.py checks exactness with it.
HALO = 64
# Largest interior side of a tile; windows are (tile + 2 * halo) wide. 2048 keeps a window near the size the
# untiled path accepts (Stylizer.tile_above = 2048^2) while wasting little on halos (4096 -> 4 windows of 2176).
DEFAULT_TILE = 2048
DTYPES = {"fp32": jnp.float32, "bf16": jnp.bfloat16}


@dataclass(frozen=True)
class Span:
    """One tile along one axis: the window [start, start + length) and the interior [lo, hi) it is trusted on."""

    start: int
    length: int
    lo: int
    hi: int


def spans(size: int, tile: int, halo: int) -> list[Span]:
    """Cover [0, size) with interiors of at most `tile`, each inside a window of one common length.

    `size`, `tile` and `halo` are multiples of SIZE_MULTIPLE. The interiors are balanced (4096 with tile 1500
    gives three of 1368, not 1500 + 1500 + 1096) to waste the least work on halos. A window is clamped to the
    image rather than shrunk, so windows at the borders start or end exactly on the image edge (where the
    network's own reflect padding applies) and every interior pixel has at least `halo` pixels of real context.
    """
    for name, value in (("size", size), ("tile", tile), ("halo", halo)):
        if value % SIZE_MULTIPLE:
            raise ValueError(f"{name}={value} must be a multiple of {SIZE_MULTIPLE}")
    if size <= tile + 2 * halo:  # the whole axis fits in one window of the requested size
        return [Span(0, size, 0, size)]
    count = math.ceil(size / tile)
    tile = math.ceil(size / count / SIZE_MULTIPLE) * SIZE_MULTIPLE
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
        if precision not in DTYPES:
            raise ValueError(f"precision must be one of {sorted(DTYPES)}, got {precision!r}")
        self.dtype = DTYPES[precision]
        self.names = [name for name, _ in transformer.cin_layers]
        graphdef, state = nnx.split(transformer)
        self._graphdef = graphdef
        self._state = cast_floats(state, self.dtype)
        self.traces = 0
        self._forward = jax.jit(self._forward_impl, static_argnames=("stop_at",))

    # ------------------------------------------------------------------ jitted core

    def _forward_impl(self, state, x, style, stats, box, *, stop_at):
        self.traces += 1  # runs only while tracing
        transformer = nnx.merge(self._graphdef, state)
        style = cast_floats(style, self.dtype)
        y = transformer(x.astype(self.dtype), style, stats=stats, stop_at=stop_at)
        if stop_at is None:
            return y.astype(jnp.float32)
        return _interior_moments(y.astype(jnp.float32), x.shape[1], x.shape[2], box)

    def __call__(self, content, style: dict) -> np.ndarray:
        """Untiled forward: content (B, H, W, 3) float in [0, 1], style: CIN parameters -> (B, H, W, 3)."""
        box = jnp.zeros((4,), jnp.int32)
        return self._forward(self._state, jnp.asarray(content), style, None, box, stop_at=None)

    # ------------------------------------------------------------------ exact tiling

    def tiled(self, content, style: dict, *, tile: int = DEFAULT_TILE, halo: int = HALO,
              progress: bool = False) -> np.ndarray:
        """Exact tiled forward; equals `self(content, style)` up to float rounding, in bounded memory."""
        content = np.asarray(content, np.float32)
        batch, height, width, _ = content.shape
        # The untiled network reflect-pads to its stride grid before anything else: do the same up front.
        pad_h, pad_w = -height % SIZE_MULTIPLE, -width % SIZE_MULTIPLE
        if pad_h or pad_w:
            content = np.pad(content, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
        tile = max(SIZE_MULTIPLE, tile // SIZE_MULTIPLE * SIZE_MULTIPLE)
        rows = spans(content.shape[1], tile, halo)
        cols = spans(content.shape[2], tile, halo)
        windows = [(r, c) for r in rows for c in cols]
        stats: dict = {}
        bar = tqdm(total=(len(self.names) + 1) * len(windows), desc="tiled passes", unit="tile",
                   disable=not progress, leave=False)
        for name in self.names:
            total = None
            for r, c in windows:
                box = jnp.asarray([r.lo - r.start, r.hi - r.start, c.lo - c.start, c.hi - c.start], jnp.int32)
                window = content[:, r.start:r.start + r.length, c.start:c.start + c.length]
                part = self._forward(self._state, jnp.asarray(window), style, dict(stats), box, stop_at=name)
                total = _merge(total, jax.device_get(part))
                bar.update()
            count, mean, m2 = total
            stats[name] = (jnp.asarray(mean, jnp.float32), jnp.asarray(m2 / count, jnp.float32))
        out = np.empty((batch, content.shape[1], content.shape[2], 3), np.float32)
        box = jnp.zeros((4,), jnp.int32)
        for r, c in windows:
            window = content[:, r.start:r.start + r.length, c.start:c.start + c.length]
            y = np.asarray(self._forward(self._state, jnp.asarray(window), style, stats, box, stop_at=None))
            out[:, r.lo:r.hi, c.lo:c.hi] = y[:, r.lo - r.start:r.hi - r.start, c.lo - c.start:c.hi - c.start]
            bar.update()
        bar.close()
        return out[:, :height, :width]


def _interior_moments(y, window_h: int, window_w: int, box):
    """Count, per-channel mean and sum of squared deviations of y (B, h, w, C) over the box's interior.

    The box is in window pixels; y may be at 1/1, 1/2 or 1/4 of the window's resolution. The box is dynamic
    (a mask, not a slice) so that every tile of a pass shares one compiled function.
    """
    fy, fx = window_h // y.shape[1], window_w // y.shape[2]
    rows = jnp.arange(y.shape[1]) * fy
    cols = jnp.arange(y.shape[2]) * fx
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


def tile_count(height: int, width: int, tile: int = DEFAULT_TILE, halo: int = HALO) -> int:
    h, w = math.ceil(height / SIZE_MULTIPLE) * SIZE_MULTIPLE, math.ceil(width / SIZE_MULTIPLE) * SIZE_MULTIPLE
    return len(spans(h, tile, halo)) * len(spans(w, tile, halo))
