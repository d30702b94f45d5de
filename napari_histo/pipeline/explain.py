"""Why the model said so: Grad-CAM of predicted tiles, read from the open slide."""

from __future__ import annotations

import io
import os
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_histo.core.progress import Progress
from napari_histo.core.tiling import TileGrid, resize_tile, select_tiles
from napari_histo.errors import InvalidImageError, InvalidParameterError
from napari_histo.io.files import source_name, write_bytes_atomic, write_png
from napari_histo.io.regions import read_tile
from napari_histo.pipeline.model import ModelHandle
from napari_histo.pipeline.qupath import write_tiles_geojson
from napari_histo.pipeline.session import SlideSession
from napari_histo.pipeline.tissue import model_tissue_grid

__all__ = [
    "GRADCAM_MEASUREMENT",
    "PATCH_SUFFIXES",
    "GradCamMosaic",
    "class_index",
    "explain_patches",
    "explain_slide",
    "gradcam_mosaic",
    "gradcam_tiles",
    "heatmap_overlay",
    "patch_files",
    "slide_outputs",
    "turbo",
]

#: the QuPath measurement that holds each tile's mean Grad-CAM value (in [0, 1])
GRADCAM_MEASUREMENT = "Grad-CAM mean"
#: image files taken from a patch folder
PATCH_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
#: longer side of the slide overlay PNG, in pixels (at most)
OVERLAY_MAX_PX = 2048
_BATCH = 16


@dataclass(frozen=True)
class GradCamMosaic:
    """Grad-CAM maps of several tiles in one float32 image in [0, 1].

    ``top_rc`` is the level-0 pixel where the image starts and ``px_level0``
    the level-0 pixels per image pixel.
    """

    image: np.ndarray
    top_rc: np.ndarray
    px_level0: float


def gradcam_tiles(
    session: SlideSession,
    model: ModelHandle,
    grid: TileGrid,
    indices: Sequence[int],
    target_class: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM maps (n, t, t) of tiles ``indices`` of ``grid`` and the class each explains (n,).

    ``target_class``: the class to explain (default: each tile's predicted class).
    """
    from napari_histo.models.gradcam import grad_cam

    if len(indices) == 0:
        raise InvalidParameterError("no tile to explain: choose at least one predicted tile")
    tiles = np.stack([read_tile(session.slide, grid, int(i)) for i in indices])
    return grad_cam(model.network(), tiles, model.spec, target_class)


def gradcam_mosaic(
    session: SlideSession, model: ModelHandle, grid: TileGrid, indices: Sequence[int]
) -> GradCamMosaic:
    """Grad-CAM of tiles ``indices`` laid out where they are on the slide (overlaps keep the maximum)."""
    maps, _ = gradcam_tiles(session, model, grid, indices)
    origins_rc = grid.origins_rc[np.asarray(indices, dtype=np.int64)]
    t = maps.shape[1]
    px_l0 = grid.tile_px_level0 / t
    top = origins_rc.min(axis=0).astype(np.float64)
    span = origins_rc.max(axis=0) - top + grid.tile_px_level0
    mosaic = np.zeros(tuple(int(np.ceil(v / px_l0)) for v in span), np.float32)
    for (r, c), cam in zip(origins_rc, maps):
        y, x = round((r - top[0]) / px_l0), round((c - top[1]) / px_l0)
        window = mosaic[y : y + t, x : x + t]
        np.maximum(window, cam[: window.shape[0], : window.shape[1]], out=window)
    return GradCamMosaic(mosaic, top, px_l0)


def class_index(model: ModelHandle, name: str | None) -> int | None:
    """Index of class ``name`` of ``model`` (``None`` for ``None``: each tile's predicted class)."""
    if name is None:
        return None
    names = list(model.spec.class_names)
    if name in names:
        return names.index(name)
    raise InvalidParameterError(
        f"{model.name} has no class {name!r}; its classes are: {', '.join(names)} (e.g. --class {names[-1]})"
    )


def turbo(values: np.ndarray) -> np.ndarray:
    """Google's Turbo colour map (polynomial fit, Mikhailov 2019) of ``values`` in [0, 1], as uint8 RGB."""
    x = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)[..., None]
    coeffs = np.array(
        [
            [0.13572138, 0.09140261, 0.10667330],
            [4.61539260, 2.19418839, 12.64194608],
            [-42.66032258, 4.84296658, -60.58204836],
            [132.13108234, -14.18503333, 110.36276771],
            [-152.94239396, 4.27729857, -89.90310912],
            [59.28637943, 2.82956604, 27.34824973],
        ]
    )
    rgb = sum(c * x**k for k, c in enumerate(coeffs))
    return (np.clip(rgb, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def heatmap_overlay(
    rgb: np.ndarray, cam: np.ndarray, alpha: float = 0.5, where: np.ndarray | None = None
) -> np.ndarray:
    """``rgb`` (uint8) with ``cam`` (same rows/cols, [0, 1]) blended on in Turbo colours.

    ``where`` (bool, optional): the pixels to colour; the others keep ``rgb``.
    """
    base = rgb[..., :3].astype(np.float32)
    blended = (1 - alpha) * base + alpha * turbo(cam).astype(np.float32)
    if where is not None:
        blended = np.where(where[..., None], blended, base)
    return (blended + 0.5).astype(np.uint8)


def _spread(n: int, most: int | None) -> np.ndarray:
    """At most ``most`` of ``n`` indices, evenly spread (all of them when ``most`` is ``None``)."""
    if most is None or most >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, most).round().astype(np.int64))


def _resize(image: np.ndarray, shape_rc: tuple[int, int]) -> np.ndarray:
    from skimage.transform import resize

    out = resize(image, shape_rc, order=1, preserve_range=True, anti_aliasing=False)
    return np.asarray(out, dtype=image.dtype)


def _slide_overlay(session: SlideSession, grid: TileGrid, maps: np.ndarray) -> np.ndarray:
    """The slide region holding the tiles of ``grid``, with their Grad-CAM maps in Turbo colours."""
    bounds = grid.bounds_rc()
    top = np.floor(bounds[:, :2].min(axis=0)).astype(np.int64)
    bottom = np.ceil(bounds[:, 2:].max(axis=0)).astype(np.int64)
    span = bottom - top
    scale = max(grid.tile_px_level0 / maps.shape[1], float(span.max()) / OVERLAY_MAX_PX)  # level-0 px per px
    shape = (max(1, round(span[0] / scale)), max(1, round(span[1] / scale)))
    slide = session.slide
    level = slide.best_level_for_downsample(scale)
    ds = slide.level_downsamples[level]
    size = (max(1, round(span[0] / ds)), max(1, round(span[1] / ds)))
    background = slide.read_region((int(top[0]), int(top[1])), level, size)[..., :3]
    background = _resize(background, shape)
    heat = np.zeros(shape, np.float32)
    covered = np.zeros(shape, bool)
    for (r0, c0, r1, c1), cam in zip(bounds, maps):
        y0, x0 = round((r0 - top[0]) / scale), round((c0 - top[1]) / scale)
        y1, x1 = min(shape[0], round((r1 - top[0]) / scale)), min(shape[1], round((c1 - top[1]) / scale))
        if y1 <= y0 or x1 <= x0:
            continue
        window = heat[y0:y1, x0:x1]
        np.maximum(window, _resize(cam, (y1 - y0, x1 - x0)), out=window)
        covered[y0:y1, x0:x1] = True
    return heatmap_overlay(background, heat, where=covered)


def _write_npy(path: Path, array: np.ndarray) -> Path:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return write_bytes_atomic(path, buffer.getvalue())


def slide_outputs(slide_path: Path | str, out_dir: Path) -> dict[str, Path]:
    """The files :func:`explain_slide` writes for ``slide_path`` (a path or a URL)."""
    stem = source_name(slide_path).split(".")[0]
    return {
        "overlay": out_dir / f"{stem}.gradcam.png",
        "maps": out_dir / f"{stem}.gradcam.npy",
        "geojson": out_dir / f"{stem}.gradcam.geojson",
    }


def explain_slide(
    session: SlideSession,
    model: ModelHandle,
    out_dir: str | os.PathLike[str],
    *,
    max_tiles: int | None = 64,
    target_class: int | None = None,
    min_tissue: float = 0.5,
) -> Generator[Progress, None, dict[str, Any]]:
    """Grad-CAM of a slide's tissue tiles (at most ``max_tiles``, evenly spread), written to ``out_dir``.

    Writes ``NAME.gradcam.png`` (the tiles' region with the maps in Turbo colours),
    ``NAME.gradcam.npy`` (the maps, float32 (n, t, t) in [0, 1]) and
    ``NAME.gradcam.geojson`` (QuPath tiles, measurement :data:`GRADCAM_MEASUREMENT`,
    classified by the class each map explains).  Returns the paths, tile count and classes.
    """
    if max_tiles is not None and max_tiles < 1:
        raise InvalidParameterError(f"max_tiles must be at least 1, got {max_tiles}")
    out = Path(out_dir)
    grid, _ = model_tissue_grid(session, model, min_tissue)
    chosen = _spread(len(grid), max_tiles)
    grid = select_tiles(grid, np.isin(np.arange(len(grid)), chosen))
    n = len(grid)
    maps, classes = [], []
    yield Progress(0, n, "Grad-CAM")
    for start in range(0, n, _BATCH):
        batch = range(start, min(n, start + _BATCH))
        m, c = gradcam_tiles(session, model, grid, list(batch), target_class)
        maps.append(m)
        classes.append(c)
        yield Progress(batch.stop, n, "Grad-CAM")
    all_maps = np.concatenate(maps).astype(np.float32)
    all_classes = np.concatenate(classes)
    out.mkdir(parents=True, exist_ok=True)
    paths = slide_outputs(session.path, out)
    names = list(model.spec.class_names)
    write_png(paths["overlay"], _slide_overlay(session, grid, all_maps))
    _write_npy(paths["maps"], all_maps)
    write_tiles_geojson(
        paths["geojson"],
        grid,
        session.name,
        labels=[names[int(k)] for k in all_classes],
        measurements={GRADCAM_MEASUREMENT: all_maps.mean(axis=(1, 2))},
    )
    return {"n_tiles": n, "classes": [names[int(k)] for k in all_classes], **paths}


def patch_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The image files of a patch folder (sorted), or an error when there are none."""
    root = Path(folder)
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in PATCH_SUFFIXES)
    if not files:
        raise InvalidImageError(
            f"{root}: holds no patch image ({', '.join(PATCH_SUFFIXES)}); give a slide or a folder of patches"
        )
    return files


def _read_patch(path: Path) -> np.ndarray:
    import imagecodecs

    try:
        pixels = np.asarray(imagecodecs.imread(str(path)))
    except Exception as exc:  # imagecodecs raises its own error types per codec
        raise InvalidImageError(f"{path}: cannot be read as an image ({exc})") from exc
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    if pixels.ndim != 3 or pixels.shape[2] < 3:
        raise InvalidImageError(f"{path}: is not an RGB image (shape {pixels.shape})")
    if pixels.dtype != np.uint8:
        raise InvalidImageError(f"{path}: has {pixels.dtype} pixels; patches must be 8-bit RGB")
    return np.ascontiguousarray(pixels[..., :3])


def explain_patches(
    model: ModelHandle,
    files: Sequence[Path],
    out_dir: str | os.PathLike[str],
    *,
    target_class: int | None = None,
) -> Generator[Progress, None, dict[str, Any]]:
    """One ``NAME.gradcam.png`` per patch image in ``out_dir``: the patch | its Grad-CAM overlay.

    Each patch is resized to the model's input size for the network; the map is shown at the patch's size.
    """
    from napari_histo.models.gradcam import grad_cam

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    size = model.spec.input_size
    written, classes = [], []
    names = list(model.spec.class_names)
    yield Progress(0, len(files), "Grad-CAM")
    for i, path in enumerate(files):
        patch = _read_patch(path)
        tile = patch if patch.shape[:2] == (size, size) else resize_tile(patch, size)
        maps, cls = grad_cam(model.network(), tile[None], model.spec, target_class)
        cam = _resize(maps[0], patch.shape[:2])
        sheet = np.concatenate([patch, heatmap_overlay(patch, cam)], axis=1)
        target = out / f"{path.stem}.gradcam.png"
        written.append(write_png(target, sheet))
        classes.append(names[int(cls[0])])
        yield Progress(i + 1, len(files), "Grad-CAM")
    return {"n_patches": len(written), "files": written, "classes": classes}
