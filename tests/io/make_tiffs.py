"""Small slides written with tifffile for the reader tests (each in a few ms)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile


def gradient_rgb(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """Smooth, non-repeating RGB content (JPEG-friendly, every tile different)."""
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[0:rows, 0:cols]
    image = np.stack([(rr * 255) // rows, (cc * 255) // cols, ((rr + cc) * 127) // (rows + cols)], -1)
    image = image + rng.integers(0, 8, image.shape)
    return image.astype(np.uint8)


def block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    rows, cols = image.shape[0] // factor, image.shape[1] // factor
    blocks = image[: rows * factor, : cols * factor].reshape(rows, factor, cols, factor, -1)
    return blocks.mean(axis=(1, 3)).round().astype(np.uint8)


def write_aperio_like(path: Path, image: np.ndarray, mpp: float = 0.2527, mag: int = 40) -> Path:
    """An SVS laid out as Aperio does: baseline, strip thumbnail, reduced level, label, macro."""
    rows, cols = image.shape[:2]
    desc = (
        f"Aperio Image Library v12.0.15 \r\n{cols}x{rows} [0,0 {cols}x{rows}] (256x256) JPEG/RGB Q=70"
        f"|AppMag = {mag}|StripeWidth = 2040|ScanScope ID = SS1234|MPP = {mpp}|Filename = test"
    )
    tiled = {"tile": (256, 256), "compression": "jpeg", "photometric": "rgb", "metadata": None}
    with tifffile.TiffWriter(path) as tif:
        tif.write(image, description=desc, **tiled)
        tif.write(
            block_mean(image, 8), description=f"{desc}\r\n-> 128x96 - ", photometric="rgb", metadata=None
        )
        tif.write(block_mean(image, 4), description=desc, subfiletype=0, **tiled)
        label = np.full((60, 80, 3), 200, np.uint8)
        tif.write(
            label,
            description="Aperio Image Library v12.0.15\r\nlabel 80x60",
            subfiletype=1,
            photometric="rgb",
            metadata=None,
        )
        macro = np.full((50, 150, 3), 100, np.uint8)
        tif.write(
            macro,
            description="Aperio Image Library v12.0.15\r\nmacro 150x50",
            subfiletype=9,
            photometric="rgb",
            metadata=None,
        )
    return path


def write_generic_pyramid(path: Path, image: np.ndarray, factors=(2, 4), dpi_cm: float | None = None) -> Path:
    """Level 0 then reduced-resolution pages (no SubIFDs), as libvips writes without --subifd."""
    extra = {}
    if dpi_cm is not None:
        extra = {"resolution": (dpi_cm, dpi_cm), "resolutionunit": "CENTIMETER"}
    with tifffile.TiffWriter(path) as tif:
        tif.write(image, tile=(256, 256), compression="zlib", photometric="rgb", **extra)
        for f in factors:
            tif.write(
                block_mean(image, f), tile=(256, 256), compression="zlib", photometric="rgb", subfiletype=1
            )
    return path
