"""Stylizing clips: frames streamed through the network in batches, with temporal stabilization.

A feed-forward stylization network amplifies small frame-to-frame changes of its input (sensor noise,
compression, a half-pixel of motion) into visible flicker. The modes of `--temporal`:

- `off`: every frame on its own.
- `stats`: every CIN layer of the network normalises with statistics pooled over a window of frames
  (`TransformerRunner.pooled`, the moment accumulation of exact tiling) instead of each frame's own.
- `flow`: each output is blended with the previous *output*, warped onto the current frame by dense optical
  flow (OpenCV's DIS) computed on the input frames. Where the warped previous input does not match the current
  one (occlusions, disocclusions, the frame border, scene cuts, flow errors) the blend weight falls to zero, so
  moving things do not drag ghosts behind them.

benchmarks/video_bench.py measures each mode's temporal error, style loss and speed; the default is the one that
met the targets there.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from arbstyle import images

TEMPORAL_MODES = ("off", "stats", "flow", "stats+flow")
DEFAULT_TEMPORAL = "flow"
STATS_WINDOW = 8  # frames whose CIN statistics are pooled in `stats` mode
DEFAULT_BLEND = 0.6  # weight of the warped previous output where the flow is trusted
FLOW_SIDE = 512  # flow is computed with the long side at most this: DIS is then a small share of a frame's cost
# Mean absolute RGB difference (0-1 scale) between the current input and the warped previous input at which the
# blend weight has fallen to 1/e: above sensor noise (about 0.01 for sigma 3/255) and well below what an
# occluding object, a disocclusion or a cut produces.
TOLERANCE = 0.04


class FlowBlend:
    """Motion-compensated recursive blending of stylized frames, with an occlusion mask. One instance per clip."""

    def __init__(self, blend: float = DEFAULT_BLEND, *, tolerance: float = TOLERANCE, flow_side: int = FLOW_SIDE):
        import cv2

        if not 0.0 <= blend < 1.0:
            raise ValueError(f"blend must be in [0, 1), got {blend}")
        self.blend, self.tolerance, self.flow_side = float(blend), float(tolerance), int(flow_side)
        self._cv2 = cv2
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self._prev = None  # (gray for flow, input frame, output frame)

    def _gray(self, frame: np.ndarray) -> np.ndarray:
        cv2 = self._cv2
        gray = cv2.cvtColor(images.to_uint8(frame), cv2.COLOR_RGB2GRAY)
        h, w = gray.shape
        scale = min(1.0, self.flow_side / max(h, w))
        if scale < 1.0:
            gray = cv2.resize(gray, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA)
        return gray

    def __call__(self, content: np.ndarray, stylized: np.ndarray) -> np.ndarray:
        """content: the input frame (float32 HxWx3 in [0, 1]); stylized: its stylization. Returns the output."""
        cv2 = self._cv2
        gray = self._gray(content)
        out = stylized
        if self._prev is not None and self.blend > 0:
            prev_gray, prev_content, prev_out = self._prev
            h, w = content.shape[:2]
            # flow from the current frame to the previous one: current(x) ~ previous(x + flow(x))
            flow = self._dis.calc(gray, prev_gray, None)
            if flow.shape[:2] != (h, w):
                fx, fy = w / flow.shape[1], h / flow.shape[0]
                flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR) * np.float32([fx, fy])
            grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            map_x, map_y = grid_x + flow[..., 0], grid_y + flow[..., 1]
            # Lanczos, not bilinear: the output is resampled again every frame, and bilinear's blur compounds
            warped_out = cv2.remap(prev_out, map_x, map_y, cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REPLICATE)
            warped_in = cv2.remap(prev_content, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            error = cv2.GaussianBlur(np.abs(content - warped_in).mean(axis=2), (5, 5), 0)
            inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
            weight = (self.blend * np.exp(-np.square(error / self.tolerance)) * inside)[..., None]
            out = (weight * warped_out + (1.0 - weight) * stylized).astype(np.float32)
            # Averaging two renderings whose brush strokes do not line up exactly lowers the contrast of the
            # strokes; give the result the stylized frame's own per-channel spread back.
            mean, spread = out.mean(axis=(0, 1)), out.std(axis=(0, 1)) + 1e-6
            out = np.clip((out - mean) * (stylized.std(axis=(0, 1)) / spread) + mean, 0.0, 1.0).astype(np.float32)
        self._prev = (gray, content, out)
        return out


def _as_frame(frame, size: tuple[int, int] | None) -> np.ndarray:
    arr = images.to_float32(frame)
    if size is not None and (arr.shape[1], arr.shape[0]) != size:
        arr = images.resize_to(arr, size)
    return arr


def stylize_stream(stylizer, frames: Iterable, embedding: np.ndarray, *, strength: float = 1.0,
                   preserve_color: bool = False, max_size: int | None = None, size: tuple[int, int] | None = None,
                   work_size: int | None = None, temporal: str | None = None, batch: int | None = None,
                   blend: float = DEFAULT_BLEND) -> Iterator[np.ndarray]:
    """Frames in, stylized float32 frames out, a batch at a time: memory holds one batch, whatever the length.

    size (width, height) resizes every frame; else max_size caps the long side. With strength < 1, the clip's
    own style is the first frame's embedding (one style for the whole clip: a per-frame one would flicker).
    """
    from arbstyle.inference.stylize import preserve_colors

    temporal = temporal or DEFAULT_TEMPORAL
    if temporal not in TEMPORAL_MODES:
        raise ValueError(f"temporal must be one of {', '.join(TEMPORAL_MODES)}, got {temporal!r}")
    shared_stats = temporal.startswith("stats")
    smoother = FlowBlend(blend) if temporal.endswith("flow") else None
    pending: list[np.ndarray] = []
    style = None

    def flush(real: int):
        work = np.stack(pending)
        outs = stylizer.stylize_batch(work, style, work_size=work_size, shared_stats=shared_stats)
        for content, out in zip(work[:real], outs[:real]):
            if preserve_color:
                out = preserve_colors(out, content)
            if smoother is not None:
                out = smoother(content, out)
            yield out
        pending.clear()

    per_batch = batch
    for frame in frames:
        if size is None:
            first = images.to_float32(frame)
            h, w = first.shape[:2]
            size = (w, h)
            if max_size and max(h, w) > max_size:
                scale = max_size / max(h, w)
                size = (max(1, round(w * scale)), max(1, round(h * scale)))
        arr = _as_frame(frame, size)
        if style is None:
            style = stylizer.apply_strength(np.asarray(embedding, np.float32)[None], arr, strength)[0]
            if per_batch is None:
                work_h, work_w = arr.shape[:2]
                if work_size and max(work_h, work_w) > work_size:
                    scale = work_size / max(arr.shape[:2])
                    work_h, work_w = round(arr.shape[0] * scale), round(arr.shape[1] * scale)
                per_batch = stylizer.frames_per_batch(work_h, work_w)
                if shared_stats:
                    per_batch = STATS_WINDOW
        pending.append(arr)
        if len(pending) == per_batch:
            yield from flush(per_batch)
    if pending:
        # the last, shorter batch is padded with repeats of its last frame (no new shape to compile), except
        # with pooled statistics, where the repeats would weigh in
        real = len(pending)
        if not shared_stats:
            pending.extend([pending[-1]] * (per_batch - real))
        yield from flush(real)
