"""Contact sheets: a labelled grid of images, rows = contents, columns = styles (or any two factors).

    sheet = contact_sheet(cells, row_labels, col_labels, row_images=contents, col_images=styles, title="ours")
    save_contact_sheet("sheet.png", cells, row_labels, col_labels)

Every image is fitted into a square tile (aspect kept, centred on white). `row_images` / `col_images` add a
header column / row of the inputs themselves; leave them out for a sheet that holds outputs only.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from arbstyle.images import save_image, to_float32, to_uint8

PAD = 4
BACKGROUND = (255, 255, 255)
EMPTY = (235, 235, 235)  # a cell with no image (None): a failed or skipped pair stays visible as a grey square


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def _tile(image, tile: int) -> Image.Image:
    canvas = Image.new("RGB", (tile, tile), EMPTY if image is None else BACKGROUND)
    if image is None:
        return canvas
    pil = image if isinstance(image, Image.Image) else Image.fromarray(to_uint8(to_float32(image)))
    pil = pil.convert("RGB")
    pil.thumbnail((tile, tile), Image.Resampling.LANCZOS)
    canvas.paste(pil, ((tile - pil.width) // 2, (tile - pil.height) // 2))
    return canvas


def _text_width(draw: ImageDraw.ImageDraw, text: str, font) -> float:
    return draw.textlength(text, font=font)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int, max_lines: int) -> list[str]:
    """Break `text` into lines of at most `width` pixels (file names have no spaces, so break anywhere);
    past max_lines the last line ends with an ellipsis."""
    lines, current = [], ""
    for char in str(text):
        if current and _text_width(draw, current + char, font) > width:
            lines.append(current)
            current = char.lstrip()
        else:
            current += char
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and _text_width(draw, last + "\u2026", font) > width:
            last = last[:-1]
        lines = lines[: max_lines - 1] + [last + "\u2026"]
    return lines


def contact_sheet(cells: Sequence[Sequence], row_labels: Sequence[str], col_labels: Sequence[str], *,
                  row_images: Sequence | None = None, col_images: Sequence | None = None, tile: int = 128,
                  title: str | None = None, label_width: int | None = None, font_size: int = 12) -> Image.Image:
    """A PIL RGB image: `cells[r][c]` (HxWx3 arrays in [0, 1] or uint8, PIL images, or None) in a labelled grid."""
    n_rows, n_cols = len(cells), len(col_labels)
    if len(row_labels) != n_rows:
        raise ValueError(f"{len(row_labels)} row labels for {n_rows} rows")
    if any(len(row) != n_cols for row in cells):
        raise ValueError(f"every row needs {n_cols} cells (one per column label)")
    if row_images is not None and len(row_images) != n_rows:
        raise ValueError(f"{len(row_images)} row images for {n_rows} rows")
    if col_images is not None and len(col_images) != n_cols:
        raise ValueError(f"{len(col_images)} column images for {n_cols} columns")
    if tile < 16:
        raise ValueError(f"tile must be at least 16 pixels, got {tile}")

    font = _font(font_size)
    title_font = _font(font_size + 4)
    line_h = font_size + 3
    label_w = label_width if label_width is not None else max(tile, 96)
    col_label_h = 2 * line_h + PAD
    title_h = (font_size + 4 + 2 * PAD) if title else 0
    left = PAD + label_w + PAD + (tile + PAD if row_images is not None else 0)
    top = title_h + PAD + col_label_h + (tile + PAD if col_images is not None else 0)
    width = left + n_cols * (tile + PAD)
    height = top + n_rows * (tile + PAD)

    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((PAD, PAD), title, fill=(0, 0, 0), font=title_font)

    for c, label in enumerate(col_labels):
        x = left + c * (tile + PAD)
        for i, line in enumerate(_wrap(draw, label, font, tile, 2)):
            draw.text((x, title_h + PAD + i * line_h), line, fill=(0, 0, 0), font=font)
        if col_images is not None:
            sheet.paste(_tile(col_images[c], tile), (x, title_h + PAD + col_label_h))

    max_lines = max(1, tile // line_h)
    for r, label in enumerate(row_labels):
        y = top + r * (tile + PAD)
        for i, line in enumerate(_wrap(draw, label, font, label_w, max_lines)):
            draw.text((PAD, y + i * line_h), line, fill=(0, 0, 0), font=font)
        x = PAD + label_w + PAD
        if row_images is not None:
            sheet.paste(_tile(row_images[r], tile), (x, y))
            x += tile + PAD
        for c in range(n_cols):
            sheet.paste(_tile(cells[r][c], tile), (x + c * (tile + PAD), y))
    return sheet


def save_contact_sheet(path: str | Path, cells, row_labels, col_labels, **kwargs) -> Path:
    """Build a contact sheet and write it atomically (arbstyle.images.save_image); returns the path."""
    return save_image(contact_sheet(cells, row_labels, col_labels, **kwargs), path)


__all__ = ["contact_sheet", "save_contact_sheet"]
