"""The small types every data source shares: :class:`Samples`, :class:`DataError`, :func:`decode_image`.

A base module with no project imports but :mod:`training.config`, so the
readers (:mod:`training.data`, :mod:`training.slides`,
:mod:`training.synthetic`) and the consumers (splits, batches, loop) can all
import it without importing each other.  :mod:`training.data` re-exports the
names, so ``from training.data import DataError, Samples`` keeps working.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from training.config import ConfigError

__all__ = ["DataError", "MixedPatchSizeWarning", "Samples", "decode_image"]


class DataError(ConfigError):
    """The data a recipe points at cannot make a training set (empty class, one class, bad labels)."""


@dataclass(frozen=True)
class Samples:
    """A labelled set of patches.

    Attributes
    ----------
    labels : ndarray, int64, shape (n,)
    class_names : tuple of str
    paths : tuple of str
        Image files (empty when ``images`` holds the pixels).
    images : ndarray, uint8, shape (n, rows, cols, 3), or None
    groups : ndarray of str, shape (n,)
        Slide or patient of each patch (its file name when unknown).
    split : ndarray of str, shape (n,)
        ``train``/``valid``/``test`` when the source fixes the split, else ``""``.
    hashes : ndarray of str, shape (n,)
        Content hash (md5 of the file bytes or pixels) for de-duplication.
    masks : ndarray, uint8, shape (n, rows, cols), or None
        Segmentation targets (class index per pixel).
    """

    labels: np.ndarray
    class_names: tuple[str, ...]
    paths: tuple[str, ...] = ()
    images: np.ndarray | None = None
    groups: np.ndarray | None = None
    split: np.ndarray | None = None
    hashes: np.ndarray | None = None
    masks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> Samples:
        index = np.asarray(index, dtype=np.int64)

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[index]

        return replace(
            self,
            labels=self.labels[index],
            paths=tuple(self.paths[i] for i in index) if self.paths else (),
            images=pick(self.images),
            groups=pick(self.groups),
            split=pick(self.split),
            hashes=pick(self.hashes),
            masks=pick(self.masks),
        )

    def counts(self) -> dict[str, int]:
        return {name: int((self.labels == i).sum()) for i, name in enumerate(self.class_names)}

    def with_pixels(self, shape: tuple[int, int] | None = None) -> Samples:
        """Decode every file once into memory (faster epochs on small sets).

        Patches whose (rows, cols) differ from ``shape`` (default: the most common one) are
        resized to it, with one warning naming an odd patch and a normal one.
        """
        if self.images is not None and (shape is None or tuple(self.images.shape[1:3]) == tuple(shape)):
            return self
        if self.images is not None:
            pixels = list(self.images)
            names = [f"patch {i}" for i in range(len(pixels))]
        else:
            pixels = [decode_image(p) for p in self.paths]
            names = list(self.paths)
        if not pixels:
            rows, cols = shape or (8, 8)
            return replace(self, images=np.zeros((0, rows, cols, 3), np.uint8))
        shapes = [(int(p.shape[0]), int(p.shape[1])) for p in pixels]
        common = (
            (int(shape[0]), int(shape[1]))
            if shape is not None
            else max(set(shapes), key=lambda s: (shapes.count(s), s))
        )
        odd = [i for i, s in enumerate(shapes) if s != common]
        if odd:
            normal = f"{names[shapes.index(common)]} is" if common in shapes else "the training patches are"
            warnings.warn(
                f"{len(odd)} of {len(pixels)} patches are not {common[1]} x {common[0]} px like the training "
                f"set (e.g. {names[odd[0]]} is {shapes[odd[0]][1]} x {shapes[odd[0]][0]} px, {normal} "
                f"{common[1]} x {common[0]} px); they are resized to {common[1]} x {common[0]} px. Export "
                "all patches at one size (and one µm/px) to avoid this.",
                MixedPatchSizeWarning,
                stacklevel=2,
            )
            for i in odd:
                pixels[i] = _resize(pixels[i], common)
        return replace(self, images=np.stack(pixels))


class MixedPatchSizeWarning(UserWarning):
    """Patches of a training set differ in size; the odd ones were resized to the common size."""


#: the codec to try first for a patch file's suffix (then any codec: files are misnamed at times)
_CODECS = {".png": "png", ".jpg": "jpeg8", ".jpeg": "jpeg8", ".tif": "tiff", ".tiff": "tiff", ".bmp": "bmp"}


def decode_image(path: str | Path, size: int = 0) -> np.ndarray:
    """uint8 (rows, cols, 3) RGB from a PNG/JPEG/TIFF file; resized to ``size`` when given.

    Grayscale is repeated to RGB, alpha dropped, 16-bit scaled to 8-bit; a file that does
    not decode (or a truncated JPEG, which would decode half grey) raises :class:`DataError` naming it.
    """
    import imagecodecs

    try:
        data = Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise DataError(f"{path}: patch file not found (moved or deleted since the list was made?)") from exc
    except IsADirectoryError as exc:
        raise DataError(f"{path}: is a folder, not an image; move it out of the class folder") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    codec = _CODECS.get(Path(path).suffix.lower())
    try:
        pixels, used = imagecodecs.imread(data, codec, return_codec=True)
    except Exception as first:  # noqa: BLE001 - imagecodecs raises ValueError or its codecs' own errors
        try:
            pixels, used = imagecodecs.imread(data, return_codec=True)
        except Exception:  # noqa: BLE001 - the first codec's reason is the one to show
            reason = str(first).strip().splitlines()[0] if str(first).strip() else type(first).__name__
            reason = reason.split(": ", 1)[-1] if "_DECODE: " in reason else reason
            raise DataError(
                f"{path}: cannot be decoded as an image ({reason[:160]}); the file is damaged or not an "
                "image. Remove or replace it and run again."
            ) from first
    if "jpeg" in getattr(used, "__name__", "").lower() and b"\xff\xd9" not in data[-1024:]:
        raise DataError(
            f"{path}: the JPEG is truncated (it has no end marker; part of it would be read as grey). "
            "Remove or replace it and run again."
        )
    return _to_rgb8(np.asarray(pixels), path, size)


def _to_rgb8(pixels: np.ndarray, path: str | Path, size: int) -> np.ndarray:
    if pixels.ndim == 3 and pixels.shape[2] == 2:  # gray + alpha
        pixels = pixels[..., 0]
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    if pixels.ndim != 3 or pixels.shape[2] < 3 or min(pixels.shape[:2]) < 1:
        raise DataError(
            f"{path}: an image of shape {pixels.shape} is not an RGB patch; export patches as RGB PNG or JPEG"
        )
    pixels = pixels[..., :3]
    if pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)
    elif pixels.dtype == bool:
        pixels = pixels.astype(np.uint8) * 255
    elif pixels.dtype != np.uint8:
        raise DataError(
            f"{path}: {pixels.dtype} pixels are not an 8- or 16-bit RGB patch; export patches as RGB PNG "
            "or JPEG"
        )
    pixels = np.ascontiguousarray(pixels)
    if size and pixels.shape[:2] != (size, size):
        pixels = _resize(pixels, (size, size))
    return pixels


def _resize(pixels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from skimage.transform import resize

    return (resize(pixels, shape, anti_aliasing=True) * 255).round().astype(np.uint8)
