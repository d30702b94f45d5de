"""Draw masks, tile outlines and class colours onto RGB overviews (pure numpy).

Used for the headless demo's step images and the ``histo predict`` overlay; the
images are uint8 (rows, cols, 3) and never modified in place.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["add_legend", "blend_mask", "fill_boxes", "outline_boxes"]

_LEGEND_BG = (255, 255, 255)
_LEGEND_TEXT = (0, 0, 0)
_CHAR_PX = 6  # width of a character of Pillow's default bitmap font, for sizing the strip


def blend_mask(
    image: np.ndarray, mask: np.ndarray, color: tuple[int, int, int], alpha: float = 0.4
) -> np.ndarray:
    """``image`` with ``mask`` (any shape; resized by nearest neighbour) tinted in ``color``."""
    rows, cols = image.shape[:2]
    r_idx = (np.arange(rows) * mask.shape[0] / rows).astype(int)
    c_idx = (np.arange(cols) * mask.shape[1] / cols).astype(int)
    big = np.asarray(mask, bool)[r_idx[:, None], c_idx[None, :]]
    out = image.astype(np.float32)
    out[big] = (1 - alpha) * out[big] + alpha * np.asarray(color, np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def _scaled_boxes(boxes_rc: np.ndarray, scale_rc: tuple[float, float], shape: tuple[int, ...]) -> np.ndarray:
    boxes = np.asarray(boxes_rc, np.float64).reshape(-1, 4) * np.tile(scale_rc, 2)
    boxes = np.rint(boxes).astype(np.int64)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, shape[0])
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, shape[1])
    return boxes


def fill_boxes(
    image: np.ndarray,
    boxes_rc: np.ndarray,
    colors: np.ndarray,
    scale_rc: tuple[float, float],
    alpha: float = 0.45,
) -> np.ndarray:
    """Tint boxes ``[r0, c0, r1, c1]`` (level-0 px, scaled by ``scale_rc``) each in its (r, g, b)."""
    out = image.astype(np.float32)
    colors = np.asarray(colors, np.float32).reshape(-1, 3)
    for (r0, c0, r1, c1), color in zip(_scaled_boxes(boxes_rc, scale_rc, image.shape), colors):
        out[r0:r1, c0:c1] = (1 - alpha) * out[r0:r1, c0:c1] + alpha * color
    return np.clip(out, 0, 255).astype(np.uint8)


def outline_boxes(
    image: np.ndarray, boxes_rc: np.ndarray, color: tuple[int, int, int], scale_rc: tuple[float, float]
) -> np.ndarray:
    """Draw 1-px outlines of boxes ``[r0, c0, r1, c1]`` (level-0 px, scaled by ``scale_rc``)."""
    out = image.copy()
    for r0, c0, r1, c1 in _scaled_boxes(boxes_rc, scale_rc, image.shape):
        r1, c1 = max(r0, r1 - 1), max(c0, c1 - 1)
        out[r0, c0 : c1 + 1] = color
        out[r1, c0 : c1 + 1] = color
        out[r0 : r1 + 1, c0] = color
        out[r0 : r1 + 1, c1] = color
    return out


def add_legend(
    image: np.ndarray,
    names: Sequence[str],
    colors: np.ndarray | Sequence[Sequence[int]],
    *,
    square: int = 12,
    pad: int = 6,
) -> np.ndarray:
    """``image`` with a white strip below it: one colour square and class name per line.

    The strip is ``pad + len(names) * (square + pad)`` rows tall; the image is widened
    (white on the right) when a name would not fit.  Names are drawn with Pillow
    (installed with scikit-image) and left out, squares kept, where it is missing.
    """
    colors = np.asarray(colors, np.uint8).reshape(-1, 3)
    names = [str(name) for name in names][: len(colors)]
    rows, cols = image.shape[:2]
    longest = max((len(name) for name in names), default=0)
    width = max(cols, 3 * pad + square + _CHAR_PX * longest) if names else cols
    strip = pad + len(names) * (square + pad)
    out = np.full((rows + strip, width, 3), _LEGEND_BG, np.uint8)
    out[:rows, :cols] = image[..., :3]
    for i, color in enumerate(colors[: len(names)]):
        top = rows + pad + i * (square + pad)
        out[top : top + square, pad : pad + square] = 0  # a dark frame keeps pale colours visible
        out[top + 1 : top + square - 1, pad + 1 : pad + square - 1] = color
    return _draw_names(out, names, rows, square, pad)


def _draw_names(out: np.ndarray, names: Sequence[str], rows: int, square: int, pad: int) -> np.ndarray:
    try:
        from PIL import Image, ImageDraw
    except ImportError:  # pragma: no cover - Pillow comes with scikit-image
        return out
    canvas = Image.fromarray(out)
    draw = ImageDraw.Draw(canvas)
    for i, name in enumerate(names):
        top = rows + pad + i * (square + pad)
        draw.text((2 * pad + square, top + 1), name, fill=_LEGEND_TEXT)
    return np.asarray(canvas, np.uint8).copy()
