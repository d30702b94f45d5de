"""Stain normalisation batched in torch (GPU when available): the API of :mod:`napari_histo.core.stain`.

Fitting (``fit``) runs once per reference or slide and uses the numpy
reference; ``transform`` runs on a whole batch of tiles on ``device``, step
for step the arithmetic of :mod:`napari_histo.core._stain_math` in float32,
so the two agree to a grey level or so.  Import torch lazily: importing
this module does not import torch until a function runs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from napari_histo.core import _stain_math as sm
from napari_histo.core._image import check_rgb
from napari_histo.core._vahadane import vahadane_matrix
from napari_histo.core.stain import (
    MIN_TISSUE_PX,
    StainMethod,
    StainNormalizer,
    StainParams,
    _fitted,
    check_same_method,
    too_little_tissue,
)
from napari_histo.errors import InvalidImageError, MissingDependencyError

__all__ = ["TorchStainNormalizer", "default_device", "normalize_stain_torch", "normalize_stained_torch"]

_MAX_STAINED = sm.MAX_STAINED_VALUE


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError(
            "the torch stain normaliser needs PyTorch: pip install 'napari-histo[models]'"
        ) from exc
    return torch


def default_device() -> str:
    """``"cuda"`` when a GPU is usable, else ``"cpu"``."""
    return "cuda" if _torch().cuda.is_available() else "cpu"


def normalize_stain_torch(
    images: Any,
    target: StainParams,
    *,
    source: StainParams | None = None,
    device: str | None = None,
) -> Any:
    """Torch version of :func:`napari_histo.core.stain.normalize_stain`.

    Parameters
    ----------
    images : ndarray or torch.Tensor, uint8, shape (n, rows, cols, 3) or (rows, cols, 3)
    target, source : StainParams
        As for the numpy function (``source`` fitted once per slide, same method).
    device : str, optional
        ``"cuda"``, ``"cpu"`` ...; default: the tensor's device, or CUDA when available.

    Returns
    -------
    torch.Tensor, uint8, same shape as ``images``, on ``device``.
    """
    torch = _torch()
    x = _as_batch(images, device)
    n, rows, cols, _ = x.shape
    flat = x.reshape(n, rows * cols, 3)
    check_same_method(target, source)
    reinhard = target.method is StainMethod.REINHARD
    with torch.no_grad():
        if source is None:  # check every image before any work
            _require_tissue(
                (flat <= _MAX_STAINED).any(dim=-1) if reinhard else (flat <= _MAX_STAINED).all(dim=-1)
            )
        # a GPU wants the whole batch at once; a CPU is fastest one image at a time (cache), as in numpy
        chunk = n if x.device.type != "cpu" else 1
        out = torch.cat([(_reinhard if reinhard else _deconvolve)(flat[i : i + chunk], target, source)
                         for i in range(0, n, chunk)])  # fmt: skip
    return out.reshape(tuple(images.shape))


def normalize_stained_torch(images: Any, target: StainParams, *, device: str | None = None) -> Any:
    """Each image normalised with its own estimated stain; images too pale to estimate one stay as they are.

    This is how a model's training patches were normalised (``training.stain.normalize_samples``), so
    inference with a model whose ``model.json`` records a stain target uses it, and a background patch
    in a batch never stops a slide.  Returns a uint8 tensor of the images' shape on ``device``.
    """
    x = _as_batch(images, device)
    n, rows, cols, _ = x.shape
    flat = x.reshape(n, rows * cols, 3)
    if target.method is StainMethod.REINHARD:
        stained = (flat <= _MAX_STAINED).any(dim=-1)
    else:
        stained = (flat <= _MAX_STAINED).all(dim=-1)
    keep = stained.sum(dim=1) >= MIN_TISSUE_PX
    out = x.clone()
    if bool(keep.any()):
        out[keep] = normalize_stain_torch(x[keep], target, device=str(x.device))
    return out.reshape(tuple(images.shape))


def _as_batch(images: Any, device: str | None) -> Any:
    torch = _torch()
    if isinstance(images, torch.Tensor):
        if images.dtype != torch.uint8 or images.ndim not in (3, 4) or images.shape[-1] != 3:
            raise InvalidImageError(
                f"images tensor has dtype {images.dtype} and shape {tuple(images.shape)}; "
                "expected uint8 (n, rows, cols, 3) channels-last RGB"
            )
        x = images if images.ndim == 4 else images[None]
        return x.to(device or images.device, non_blocking=True)
    arr = check_rgb(images, name="images", batch=True)
    return torch.from_numpy(np.ascontiguousarray(arr)).to(device or default_device())


def _tensor(values: np.ndarray, like: Any) -> Any:
    return _torch().as_tensor(np.asarray(values), dtype=torch_float(), device=like.device)


def _fitted_tensor(value: np.ndarray | None, name: str, params: StainParams, like: Any) -> Any:
    """A fitted field of ``params`` as a tensor; ``ValueError`` naming it when the parameters lack it."""
    return _tensor(_fitted(value, name, params), like)


def torch_float() -> Any:
    return _torch().float32


def _od(flat: Any) -> Any:
    return math.log(256.0) - _torch().log(flat.to(torch_float()) + 1.0)


def _masked_quantile(values: Any, mask: Any, q: float | tuple[float, ...]) -> Any:
    """Same as ``_stain_math.masked_quantile`` for (n, m) or (n, m, k) tensors."""
    torch = _torch()
    if values.ndim == 3:
        return torch.stack([_masked_quantile(values[..., j], mask, q) for j in range(values.shape[2])], 1)
    ordered = torch.sort(torch.where(mask, values, torch.full_like(values, math.inf)), dim=1).values
    count = mask.sum(dim=1)
    last = torch.clamp(count - 1, min=0)
    out = []
    for x in q if isinstance(q, tuple) else (q,):
        pos = x * last.to(values.dtype)
        lo = torch.floor(pos).long()
        hi = torch.minimum(lo + 1, last)
        frac = pos - lo.to(values.dtype)
        pick = ordered.gather(1, lo[:, None])[:, 0] * (1 - frac) + ordered.gather(1, hi[:, None])[:, 0] * frac
        out.append(torch.where(count > 0, pick, torch.full_like(pick, math.nan)))
    return torch.stack(out, -1) if isinstance(q, tuple) else out[0]


def _order_he(v1: Any, v2: Any) -> Any:
    torch = _torch()
    h_first = (v1[:, 0] >= v2[:, 0])[:, None]
    he = torch.stack([torch.where(h_first, v1, v2), torch.where(h_first, v2, v1)], dim=1)
    return he / torch.linalg.norm(he, dim=2, keepdim=True)


def _plane_normals(he: Any) -> Any:
    """Same as ``_stain_math.plane_normals``: unit ``h x e`` of (n, 2, 3) stain matrices."""
    torch = _torch()
    normal = torch.linalg.cross(he[:, 0], he[:, 1], dim=-1)
    return normal / torch.clamp(torch.linalg.norm(normal, dim=1, keepdim=True), min=1e-12)


def _restain_matrices(source: Any, scale: Any, target: Any) -> Any:
    """Same as ``_stain_math.restain_matrices`` ((n, 2, 3) ``target``): the off-plane OD is kept."""
    normals = _plane_normals(source)[:, :, None] * _plane_normals(target)[:, None]
    return _torch().linalg.pinv(source) @ (scale[:, :, None] * target) + normals


def _macenko(od: Any, mask: Any) -> Any:
    torch = _torch()
    w = mask.to(od.dtype)[..., None]
    count = w.sum(dim=1)
    mean = (od * w).sum(dim=1) / count
    centred = (od - mean[:, None]) * w
    cov = centred.transpose(1, 2) @ centred / torch.clamp(count - 1, min=1)[:, :, None]
    _, vecs = torch.linalg.eigh(cov)
    e2, e1 = vecs[:, :, 1], vecs[:, :, 2]
    phi = torch.atan2((od @ e1[:, :, None])[..., 0], (od @ e2[:, :, None])[..., 0])
    extremes = _masked_quantile(phi, mask, (sm.ALPHA_PERCENT / 100, 1 - sm.ALPHA_PERCENT / 100))
    lo, hi = extremes[:, :1], extremes[:, 1:]
    v_lo = e2 * torch.cos(lo) + e1 * torch.sin(lo)
    v_hi = e2 * torch.cos(hi) + e1 * torch.sin(hi)
    v_lo = v_lo * torch.where(v_lo.sum(dim=1, keepdim=True) < 0, -1.0, 1.0)
    v_hi = v_hi * torch.where(v_hi.sum(dim=1, keepdim=True) < 0, -1.0, 1.0)
    return _order_he(v_lo, v_hi)


def _deconvolve(flat: Any, target: StainParams, source: StainParams | None) -> Any:
    torch = _torch()
    od = _od(flat)
    n = flat.shape[0]
    if source is not None:
        he = _fitted_tensor(source.stain_matrix, "stain_matrix", source, od).expand(n, 2, 3)
        max_c = _fitted_tensor(source.max_concentrations, "max_concentrations", source, od).expand(n, 2)
    else:
        keep = (flat <= _MAX_STAINED).all(dim=-1)
        if target.method is StainMethod.MACENKO:
            he = _macenko(od, keep)
        else:  # Vahadane's sparse fit stays per image on the CPU: fit a source per slide instead
            od_np, keep_np = od.double().cpu().numpy(), keep.cpu().numpy()
            he = _tensor(np.stack([vahadane_matrix(od_np[i][keep_np[i]]) for i in range(n)]), od)
        max_c = _masked_quantile(od @ torch.linalg.pinv(he), keep, sm.MAX_C_PERCENT / 100)
    target_max_c = _fitted_tensor(target.max_concentrations, "max_concentrations", target, od)
    scale = target_max_c / torch.clamp(max_c, min=1e-6)
    target_he = _fitted_tensor(target.stain_matrix, "stain_matrix", target, od).expand(n, 2, 3)
    out_od = od @ _restain_matrices(he, scale, target_he)
    return torch.clamp(torch.round(256.0 * torch.exp(-out_od) - 1.0), 0, 255).to(torch.uint8)


def _reinhard(flat: Any, target: StainParams, source: StainParams | None) -> Any:
    torch = _torch()
    lab = _rgb_to_lab(flat)
    if source is not None:
        mean = _fitted_tensor(source.lab_mean, "lab_mean", source, lab)[None]
        std = _fitted_tensor(source.lab_std, "lab_std", source, lab)[None]
    else:
        keep = (flat <= _MAX_STAINED).any(dim=-1)
        w = keep[..., None].to(lab.dtype)
        count = w.sum(dim=1)
        mean = (lab * w).sum(dim=1) / count
        std = torch.sqrt((((lab - mean[:, None]) ** 2) * w).sum(dim=1) / count)
    scaled = (lab - mean[:, None]) / torch.clamp(std, min=1e-6)[:, None]
    target_mean = _fitted_tensor(target.lab_mean, "lab_mean", target, lab)
    target_std = _fitted_tensor(target.lab_std, "lab_std", target, lab)
    return _lab_to_rgb(scaled * target_std + target_mean)


def _rgb_to_lab(flat: Any) -> Any:
    torch = _torch()
    lin = _tensor(sm.SRGB_TO_LINEAR, flat)[flat.long()]  # table lookup, as in numpy
    xyz = lin @ _tensor(sm.RGB_TO_XYZ.T, lin) / _tensor(sm.WHITE_D65, lin)
    f = torch.where(xyz > 0.008856, torch.pow(torch.clamp(xyz, min=0), 1 / 3), 7.787 * xyz + 16.0 / 116.0)
    return torch.stack(
        [116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])], dim=-1
    )


def _lab_to_rgb(lab: Any) -> Any:
    torch = _torch()
    fy = (lab[..., 0] + 16.0) / 116.0
    f = torch.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], dim=-1)
    xyz = torch.where(f > 0.2068966, f**3, (f - 16.0 / 116.0) / 7.787) * _tensor(sm.WHITE_D65, lab)
    lin = torch.clamp(xyz @ _tensor(np.linalg.inv(sm.RGB_TO_XYZ).T, lab), 0.0, 1.0)
    c = torch.where(lin > 0.0031308, 1.055 * lin ** (1 / 2.4) - 0.055, 12.92 * lin)
    return torch.clamp(torch.round(c * 255.0), 0, 255).to(torch.uint8)


def _require_tissue(keep: Any) -> None:
    error = too_little_tissue(keep.sum(dim=1).tolist())
    if error is not None:
        raise error


class TorchStainNormalizer(StainNormalizer):
    """:class:`~napari_histo.core.stain.StainNormalizer` whose ``transform`` runs batched in torch.

    ``fit`` / ``fit_source`` / JSON are inherited (numpy, once per reference or
    slide); ``transform`` returns a uint8 tensor on ``device`` (default: CUDA
    when available).
    """

    def __init__(
        self,
        method: StainMethod | str = StainMethod.MACENKO,
        target: StainParams | None = None,
        device: str | None = None,
        *,
        skip_unstained: bool = False,
    ):
        super().__init__(method, target)
        self.device = device or default_device()
        self.skip_unstained = skip_unstained

    def transform(self, images: Any, source: StainParams | None = None) -> Any:
        """Normalise a uint8 batch (n, rows, cols, 3) (array or tensor); returns a uint8 tensor.

        With ``skip_unstained`` (and no ``source``), images too pale to estimate their own stain are
        returned unchanged instead of raising :class:`~napari_histo.errors.NoTissueError`.
        """
        if self.target is None:
            raise RuntimeError("call fit(reference) first, or construct with target=")
        if self.skip_unstained and source is None:
            return normalize_stained_torch(images, self.target, device=self.device)
        return normalize_stain_torch(images, self.target, source=source, device=self.device)

    @classmethod
    def for_model(cls, stain: dict[str, Any], device: str | None = None) -> TorchStainNormalizer:
        """The normaliser a model's ``model.json`` ``stain`` target asks for, as its training applied it."""
        return cls(target=StainParams.from_dict(stain), device=device, skip_unstained=True)

    @classmethod
    def from_json(cls, text: str, device: str | None = None) -> TorchStainNormalizer:
        return cls(target=StainParams.from_json(text), device=device)
