"""The small types every data source shares: :class:`Samples`, :class:`DataError`, :func:`decode_image`.

A base module with no project imports but :mod:`training.config`, so the
readers (:mod:`training.data`, :mod:`training.slides`,
:mod:`training.synthetic`) and the consumers (splits, batches, loop) can all
import it without importing each other.  :mod:`training.data` re-exports the
names, so ``from training.data import DataError, Samples`` keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from training.config import ConfigError

__all__ = ["DataError", "Samples", "decode_image"]


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

    def with_pixels(self) -> Samples:
        """Decode every file once into memory (faster epochs on small sets)."""
        if self.images is not None:
            return self
        return replace(self, images=np.stack([decode_image(p) for p in self.paths]))


def decode_image(path: str | Path, size: int = 0) -> np.ndarray:
    """uint8 (rows, cols, 3) RGB from a PNG/JPEG/TIFF file; resized to ``size`` when given."""
    import imagecodecs

    pixels = imagecodecs.imread(str(path))
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    pixels = np.ascontiguousarray(pixels[..., :3])
    if size and pixels.shape[:2] != (size, size):
        from skimage.transform import resize

        pixels = (resize(pixels, (size, size), anti_aliasing=True) * 255).round().astype(np.uint8)
    return pixels
