"""A synthetic H&E-like pyramidal slide, made offline by this package's own code.

Tissue islands on a bright background, pink (eosin) stroma with purple
(haematoxylin) nuclei, coloured by Beer-Lambert absorption with the standard
H&E stain vectors (Ruifrok & Johnston), so stain methods see realistic optical
densities.  Written as a tiled JPEG OME-TIFF with SubIFD levels and µm/px.
Memory stays bounded: level 0 is rendered in strips of one tile row.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from scipy import ndimage

from napari_histo.core.stain import RUIFROK_RGB_FROM_HED

__all__ = ["SYNTHETIC_MPP", "write_synthetic_slide"]

SYNTHETIC_MPP = 0.5
# optical density per unit stain (rows: haematoxylin, eosin); Ruifrok & Johnston 2001
_STAIN_OD = RUIFROK_RGB_FROM_HED[:2].astype(np.float32)
_STAIN_OD /= np.linalg.norm(_STAIN_OD, axis=1, keepdims=True)


def write_synthetic_slide(
    path: str | os.PathLike[str],
    shape_rc: tuple[int, int] = (6144, 8192),
    *,
    tile_px: int = 512,
    downsamples: tuple[int, ...] = (4, 16),
    mpp: float = SYNTHETIC_MPP,
    seed: int = 0,
    quality: int = 90,
) -> Path:
    """Write an H&E-like pyramidal OME-TIFF and return its path.

    Parameters
    ----------
    path : path-like
        Output file (``.ome.tif``); written to a temporary name, then renamed.
    shape_rc : (int, int)
        Level-0 (rows, cols); multiples of ``tile_px`` are fastest.
    tile_px : int
        TIFF tile edge in pixels.
    downsamples : tuple of int
        Factors of the reduced levels stored as SubIFDs (each divides tile_px).
    mpp : float
        µm/px written as OME ``PhysicalSizeX/Y``.
    seed : int
        Same seed, same pixels.
    quality : int
        JPEG quality.
    """
    import tifffile

    path = Path(path)
    rows, cols = shape_rc
    rng = np.random.default_rng(seed)
    tissue_low, low_factor = _tissue_field(rows, cols, rng)
    nuclei = _nucleus_centres(tissue_low, low_factor, rows, cols, rng)
    reduced = {f: np.empty((rows // f, cols // f, 3), np.uint8) for f in downsamples}

    def level0_tiles():
        for r0 in range(0, rows, tile_px):
            strip = _render_strip(r0, min(rows, r0 + tile_px), cols, tissue_low, low_factor, nuclei, seed)
            for f, level in reduced.items():
                _downsample_into(level, strip, r0, f)
            padded = np.full((tile_px, -(-cols // tile_px) * tile_px, 3), 255, np.uint8)
            padded[: strip.shape[0], :cols] = strip
            for c0 in range(0, cols, tile_px):
                yield padded[:, c0 : c0 + tile_px]

    tmp = path.with_name(path.name + ".part")
    options = {"tile": (tile_px, tile_px), "compression": "jpeg", "compressionargs": {"level": quality}}
    with tifffile.TiffWriter(tmp, bigtiff=rows * cols * 3 > 2**31, ome=True) as tif:
        tif.write(
            level0_tiles(),
            shape=(rows, cols, 3),
            dtype=np.uint8,
            photometric="rgb",
            subifds=len(downsamples),
            resolution=(1e4 / mpp, 1e4 / mpp),
            resolutionunit="CENTIMETER",
            metadata={
                "axes": "YXS",
                "PhysicalSizeX": mpp,
                "PhysicalSizeXUnit": "µm",
                "PhysicalSizeY": mpp,
                "PhysicalSizeYUnit": "µm",
                "Name": "napari-histo synthetic H&E",
            },
            **options,
        )
        for f in downsamples:
            tif.write(reduced[f], photometric="rgb", subfiletype=1, **options)
    os.replace(tmp, path)
    return path


def _tissue_field(rows: int, cols: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Smooth tissue density in [0, 1] at 1/32 resolution (0 = background)."""
    factor = 32
    low = rng.standard_normal((-(-rows // factor) + 2, -(-cols // factor) + 2)).astype(np.float32)
    low = ndimage.gaussian_filter(low, sigma=max(4.0, min(low.shape) / 10))
    low = (low - low.mean()) / (low.std() + 1e-6)
    # keep a margin of background around the tissue, as on a real glass slide
    rr, cc = np.mgrid[0 : low.shape[0], 0 : low.shape[1]]
    edge = np.minimum.reduce([rr, cc, low.shape[0] - 1 - rr, low.shape[1] - 1 - cc]) / 6.0
    density = np.clip(low + 0.2, 0, None) * np.clip(edge, 0, 1)
    return np.clip(density * 1.5, 0, 1), factor


def _nucleus_centres(
    tissue_low: np.ndarray, factor: int, rows: int, cols: int, rng: np.random.Generator
) -> np.ndarray:
    """(row, col, radius_px) of nuclei, denser where tissue is denser."""
    count = int(tissue_low.sum() * factor * factor / 180)
    r = rng.uniform(0, rows, count * 2)
    c = rng.uniform(0, cols, count * 2)
    keep = rng.uniform(0, 1, r.size) < tissue_low[(r / factor).astype(int), (c / factor).astype(int)]
    radius = rng.uniform(2.5, 5.5, r.size)
    centres = np.stack([r[keep], c[keep], radius[keep]], axis=1)
    return centres[np.argsort(centres[:, 0])]


def _render_strip(
    r0: int,
    r1: int,
    cols: int,
    tissue_low: np.ndarray,
    factor: int,
    nuclei: np.ndarray,
    seed: int,
) -> np.ndarray:
    """RGB pixels of level-0 rows ``[r0, r1)``."""
    rows = r1 - r0
    yy = (np.arange(r0, r1) + 0.5) / factor - 0.5
    xx = (np.arange(cols) + 0.5) / factor - 0.5
    tissue = ndimage.map_coordinates(
        tissue_low, np.meshgrid(yy, xx, indexing="ij"), order=1, mode="nearest"
    ).astype(np.float32)
    local = np.random.default_rng((seed, r0))
    fibres = ndimage.gaussian_filter(local.standard_normal((rows, cols)).astype(np.float32), (1.0, 3.0))
    eosin = tissue * (0.55 + 0.35 * np.tanh(fibres * 3))
    haem = np.zeros((rows, cols), np.float32)
    margin = 8
    lo, hi = np.searchsorted(nuclei[:, 0], [r0 - margin, r1 + margin])
    for r, c, radius in nuclei[lo:hi]:
        _stamp_nucleus(haem, r - r0, c, radius)
    haem = np.clip(haem, 0, 1.6) + 0.08 * tissue
    od = haem[..., None] * _STAIN_OD[0] + eosin[..., None] * _STAIN_OD[1]
    noise = local.normal(0, 0.015, (rows, cols, 1)).astype(np.float32)
    rgb = 250 * np.exp(-(od + noise))
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _stamp_nucleus(canvas: np.ndarray, r: float, c: float, radius: float) -> None:
    size = int(np.ceil(radius)) + 1
    ri, ci = int(round(r)), int(round(c))
    y0, y1 = max(0, ri - size), min(canvas.shape[0], ri + size + 1)
    x0, x1 = max(0, ci - size), min(canvas.shape[1], ci + size + 1)
    if y0 >= y1 or x0 >= x1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1]
    dist = np.hypot((yy - r) / 1.0, (xx - c) / 1.3) / radius
    canvas[y0:y1, x0:x1] += np.clip(1.2 - dist, 0, 1) * 1.3


def _downsample_into(level: np.ndarray, strip: np.ndarray, r0: int, factor: int) -> None:
    rows = strip.shape[0] // factor
    cols = level.shape[1]
    block = strip[: rows * factor, : cols * factor].reshape(rows, factor, cols, factor, 3)
    level[r0 // factor : r0 // factor + rows] = block.mean(axis=(1, 3)).round().astype(np.uint8)
