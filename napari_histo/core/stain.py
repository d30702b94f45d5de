"""Stain normalisation: Macenko, Vahadane and Reinhard (numpy reference).

Fit a *target* once on a reference image, then transform batches of tiles so
that they take its colours::

    target = fit_stain(reference_rgb, "macenko")
    out = normalize_stain(tiles, target)                  # per-tile source estimate
    source = fit_stain(slide_tissue_rgb, "macenko")       # or once per slide ...
    out = normalize_stain(tiles, target, source=source)   # ... and applied to every tile

``StainParams.to_json()`` / ``from_json()`` carry a fitted target with a model.
``napari_histo.models.stain_torch`` is the same API batched in torch (GPU).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from napari_histo.core import _stain_math as sm
from napari_histo.core._image import check_rgb
from napari_histo.core._vahadane import vahadane_matrix
from napari_histo.errors import NoTissueError

__all__ = [
    "MIN_TISSUE_PX",
    "RUIFROK_RGB_FROM_HED",
    "StainMethod",
    "StainNormalizer",
    "StainParams",
    "check_same_method",
    "fit_stain",
    "macenko_reference",
    "normalize_stain",
    "too_little_tissue",
]

#: fewest stained pixels a stain estimate is made from
MIN_TISSUE_PX = 100
#: Ruifrok & Johnston's optical-density vectors (rows: haematoxylin, eosin, DAB/residual), the
#: colours of textbook H&E; used to render synthetic slides and to jitter stains in training
RUIFROK_RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
#: Macenko et al.'s reference H&E stain vectors (rows: haematoxylin, eosin) and 99th-percentile
#: concentrations: the target most Macenko implementations map to by default
MACENKO_REFERENCE_MATRIX = ((0.5626, 0.7201, 0.4062), (0.2159, 0.8012, 0.5581))
MACENKO_REFERENCE_MAX_CONCENTRATIONS = (1.9705, 1.0308)
_JSON_FORMAT = "napari-histo/stain-params"
# images processed together; on the CPU one at a time keeps the float64 intermediates in cache and
# measured fastest (224² tiles: 1 -> 208, 4 -> 175, 64 -> 63 tiles/s); batching pays in torch on a GPU
_CHUNK_IMAGES = 1


class StainMethod(str, Enum):
    """Stain normalisation methods."""

    MACENKO = "macenko"
    VAHADANE = "vahadane"
    REINHARD = "reinhard"


@dataclass(frozen=True, eq=False)
class StainParams:
    """What a stain fit found: the target (or source) of a normalisation.

    Attributes
    ----------
    method : StainMethod
    stain_matrix : ndarray, float64, shape (2, 3) or None
        Unit OD vectors of haematoxylin and eosin (Macenko, Vahadane).
    max_concentrations : ndarray, float64, shape (2,) or None
        99th percentile of each stain's concentration over stained pixels.
    lab_mean, lab_std : ndarray, float64, shape (3,) or None
        CIELAB mean and standard deviation over tissue pixels (Reinhard).
    """

    method: StainMethod
    stain_matrix: np.ndarray | None = None
    max_concentrations: np.ndarray | None = None
    lab_mean: np.ndarray | None = None
    lab_std: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", StainMethod(self.method))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (lists of floats)."""
        out: dict[str, Any] = {"format": _JSON_FORMAT, "version": 1, "method": self.method.value}
        for name in ("stain_matrix", "max_concentrations", "lab_mean", "lab_std"):
            value = getattr(self, name)
            if value is not None:
                out[name] = np.asarray(value).tolist()
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StainParams:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` naming a missing or malformed field."""
        if data.get("format") != _JSON_FORMAT:
            raise ValueError(f"not napari-histo stain parameters (format={data.get('format')!r})")
        method = StainMethod(data["method"])
        shapes = {"stain_matrix": (2, 3), "max_concentrations": (2,), "lab_mean": (3,), "lab_std": (3,)}
        needed = (
            ("lab_mean", "lab_std")
            if method is StainMethod.REINHARD
            else ("stain_matrix", "max_concentrations")
        )
        values: dict[str, np.ndarray | None] = {}
        for name, shape in shapes.items():
            if name not in data:
                if name in needed:
                    raise ValueError(f"{method.value} stain parameters need {name!r}; the JSON has none")
                values[name] = None
                continue
            arr = np.asarray(data[name], dtype=np.float64)
            if arr.shape != shape or not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} must be finite numbers of shape {shape}, got {data[name]!r}")
            values[name] = arr
        return cls(method, **values)

    @classmethod
    def from_json(cls, text: str) -> StainParams:
        return cls.from_dict(json.loads(text))


def macenko_reference() -> StainParams:
    """Macenko et al.'s reference H&E target (the demo's and the usual default target)."""
    return StainParams(
        StainMethod.MACENKO,
        np.asarray(MACENKO_REFERENCE_MATRIX),
        np.asarray(MACENKO_REFERENCE_MAX_CONCENTRATIONS),
    )


def fit_stain(
    reference: np.ndarray,
    method: StainMethod | str = StainMethod.MACENKO,
    *,
    mask: np.ndarray | None = None,
) -> StainParams:
    """Fit stain parameters on the tissue pixels of an image (or a stack of tiles pooled).

    Parameters
    ----------
    reference : ndarray, uint8, shape (rows, cols, 3) or (n, rows, cols, 3)
    method : StainMethod or {"macenko", "vahadane", "reinhard"}
    mask : ndarray, bool, shape of ``reference`` without the channel axis, optional
        Restrict the fit to these pixels (e.g. :func:`~napari_histo.core.tissue.detect_tissue`).

    Raises
    ------
    NoTissueError
        Fewer than ``MIN_TISSUE_PX`` stained pixels (a blank or background reference).
    InvalidImageError
        For grayscale, RGBA or non-uint8 input.
    """
    method = StainMethod(method)
    rgb = check_rgb(reference, name="stain reference", batch=True).reshape(1, -1, 3)
    keep = sm.tissue_mask_any(rgb) if method is StainMethod.REINHARD else sm.stained_mask(rgb)
    if mask is not None:
        keep &= np.asarray(mask, dtype=bool).reshape(1, -1)
    count = int(keep.sum())
    if count < MIN_TISSUE_PX:
        raise NoTissueError(
            f"the stain reference has {count} stained pixel(s), fewer than the {MIN_TISSUE_PX} needed "
            "(is it background?). Choose a reference region that contains H&E-stained tissue."
        )
    if method is StainMethod.REINHARD:
        lab = sm.rgb_to_lab(rgb[keep])
        return StainParams(method, lab_mean=lab.mean(axis=0), lab_std=np.maximum(lab.std(axis=0), 1e-6))
    od = sm.od_from_rgb(rgb)
    if method is StainMethod.MACENKO:
        he = sm.macenko_matrices(od, keep)[0]
    else:
        he = vahadane_matrix(od[keep])
    conc = sm.concentrations(od, he[None])
    max_c = sm.masked_quantile(conc, keep, sm.MAX_C_PERCENT / 100)[0]
    return StainParams(method, stain_matrix=he, max_concentrations=max_c)


def normalize_stain(
    images: np.ndarray,
    target: StainParams,
    *,
    source: StainParams | None = None,
) -> np.ndarray:
    """Give images the stain colours of ``target``.

    Parameters
    ----------
    images : ndarray, uint8, shape (rows, cols, 3) or (n, rows, cols, 3)
    target : StainParams
        From :func:`fit_stain` on the reference.
    source : StainParams, optional
        Parameters of the images' own slide, fitted once (same method); without
        it each image is estimated on its own (Vahadane: slowly, one by one).

    Returns
    -------
    ndarray, uint8, same shape as ``images``

    Raises
    ------
    NoTissueError
        Without ``source``, when an image has too few stained pixels to estimate.
    """
    batch = check_rgb(images, name="images", batch=True)
    n, rows, cols, _ = batch.shape
    flat = batch.reshape(n, rows * cols, 3)
    check_same_method(target, source)
    reinhard = target.method is StainMethod.REINHARD
    if source is None:  # every image is estimated on its own: check them all first
        _require_tissue(sm.tissue_mask_any(flat) if reinhard else sm.stained_mask(flat))
    out = np.empty_like(flat)
    for start in range(0, n, _CHUNK_IMAGES):
        part = flat[start : start + _CHUNK_IMAGES]
        out[start : start + _CHUNK_IMAGES] = (_reinhard if reinhard else _deconvolve)(part, target, source)
    return out.reshape(np.shape(images))


def _reinhard(flat: np.ndarray, target: StainParams, source: StainParams | None) -> np.ndarray:
    lab = sm.rgb_to_lab(flat)
    if source is not None:
        mean = _fitted(source.lab_mean, "lab_mean", source)[None]
        std = _fitted(source.lab_std, "lab_std", source)[None]
    else:
        keep = sm.tissue_mask_any(flat)
        w = keep[..., None].astype(np.float64)
        count = w.sum(axis=1)
        mean = (lab * w).sum(axis=1) / count
        std = np.sqrt((((lab - mean[:, None]) ** 2) * w).sum(axis=1) / count)
    target_mean = _fitted(target.lab_mean, "lab_mean", target)
    target_std = _fitted(target.lab_std, "lab_std", target)
    scaled = (lab - mean[:, None]) / np.maximum(std, 1e-6)[:, None] * target_std + target_mean
    return sm.lab_to_rgb(scaled)


def _deconvolve(flat: np.ndarray, target: StainParams, source: StainParams | None) -> np.ndarray:
    od = sm.od_from_rgb(flat)
    if source is not None:
        he = np.broadcast_to(_fitted(source.stain_matrix, "stain_matrix", source), (flat.shape[0], 2, 3))
        source_max_c = _fitted(source.max_concentrations, "max_concentrations", source)
        max_c = np.broadcast_to(source_max_c, (flat.shape[0], 2))
    else:
        keep = sm.stained_mask(flat)
        if target.method is StainMethod.MACENKO:
            he = sm.macenko_matrices(od, keep)
        else:
            he = np.stack([vahadane_matrix(od[i][keep[i]]) for i in range(flat.shape[0])])
        max_c = sm.masked_quantile(sm.concentrations(od, he), keep, sm.MAX_C_PERCENT / 100)
    scale = _fitted(target.max_concentrations, "max_concentrations", target) / np.maximum(max_c, 1e-6)
    # one 3 x 3 map per image: the stains restained, the off-plane OD kept (identity for target == source)
    return sm.rgb_from_od(
        od @ sm.restain_matrices(he, scale, _fitted(target.stain_matrix, "stain_matrix", target))
    )


def _fitted(value: np.ndarray | None, name: str, params: StainParams) -> np.ndarray:
    """A fitted field of ``params``; ``ValueError`` naming it when the parameters lack it."""
    if value is None:
        raise ValueError(
            f"{params.method.value} stain parameters have no {name}; fit them with fit_stain or load "
            "complete ones with StainParams.from_dict"
        )
    return value


def check_same_method(target: StainParams, source: StainParams | None) -> None:
    """Raise ``ValueError`` when ``source`` was fitted with another method than ``target``."""
    if source is not None and source.method is not target.method:
        raise ValueError(
            f"source was fitted with {source.method.value} but target with {target.method.value}; "
            "fit both with the same method"
        )


def too_little_tissue(counts: Sequence[int]) -> NoTissueError | None:
    """The error for images whose stained-pixel ``counts`` are below ``MIN_TISSUE_PX``, or ``None``."""
    empty = [i for i, count in enumerate(counts) if count < MIN_TISSUE_PX]
    if not empty:
        return None
    return NoTissueError(
        f"image(s) {empty[:10]} have fewer than {MIN_TISSUE_PX} stained pixels, so their "
        "stain cannot be estimated (background tiles?). Drop them with detect_tissue, or fit the "
        "slide once with fit_stain and pass it as source=."
    )


def _require_tissue(keep: np.ndarray) -> None:
    error = too_little_tissue(keep.sum(axis=1).tolist())
    if error is not None:
        raise error


class StainNormalizer:
    """``fit(reference)`` / ``transform(images)`` over :func:`fit_stain` and :func:`normalize_stain`.

    Parameters
    ----------
    method : StainMethod or str
    target : StainParams, optional
        An already fitted target (e.g. loaded from a model's JSON).
    """

    def __init__(self, method: StainMethod | str = StainMethod.MACENKO, target: StainParams | None = None):
        self.method = StainMethod(target.method if target is not None else method)
        self.target = target

    def fit(self, reference: np.ndarray, mask: np.ndarray | None = None) -> StainNormalizer:
        """Fit the target on a reference image; returns ``self``."""
        self.target = fit_stain(reference, self.method, mask=mask)
        return self

    def fit_source(self, image: np.ndarray, mask: np.ndarray | None = None) -> StainParams:
        """Parameters of a source slide (pass them to :meth:`transform` as ``source``)."""
        return fit_stain(image, self.method, mask=mask)

    def transform(self, images: np.ndarray, source: StainParams | None = None) -> np.ndarray:
        """Normalise uint8 RGB images (rows, cols, 3) or (n, rows, cols, 3)."""
        if self.target is None:
            raise RuntimeError("call fit(reference) first, or construct with target=")
        return normalize_stain(images, self.target, source=source)

    def to_json(self) -> str:
        if self.target is None:
            raise RuntimeError("nothing to save: call fit(reference) first")
        return self.target.to_json()

    @classmethod
    def from_json(cls, text: str) -> StainNormalizer:
        return cls(target=StainParams.from_json(text))
