"""Exceptions raised by napari-histo.

Every error inherits :class:`HistoError` *and* the builtin that matches the
problem, so ``except FileNotFoundError`` keeps working for callers who do not
know this package.  Each message names the file, the problem and the fix.
"""

from __future__ import annotations

__all__ = [
    "CorruptSlideError",
    "CorruptTileError",
    "DeviceUnavailableError",
    "DownloadError",
    "FileAccessError",
    "HistoError",
    "InvalidImageError",
    "InvalidParameterError",
    "MemoryBudgetError",
    "MissingDependencyError",
    "MissingMppError",
    "NoTissueError",
    "SlideNotFoundError",
    "TrainingFailedError",
    "UnsupportedCompressionError",
    "UnsupportedFormatError",
    "UnsupportedModelError",
]


class HistoError(Exception):
    """Base class of every error napari-histo raises on purpose."""


class SlideNotFoundError(HistoError, FileNotFoundError):
    """The slide path does not exist or is not a file."""


class UnsupportedFormatError(HistoError, ValueError):
    """The file is not an image format napari-histo can read."""


class UnsupportedCompressionError(HistoError, NotImplementedError):
    """The TIFF uses a compression scheme no installed codec can decode."""


class CorruptSlideError(HistoError, OSError):
    """The file is damaged: truncated, unreadable structure or bad tile table."""


class CorruptTileError(CorruptSlideError):
    """One compressed tile of an otherwise readable slide fails to decode."""


class MissingMppError(HistoError, ValueError):
    """The slide has no µm/px in its metadata and the operation needs one."""


class DownloadError(HistoError, ConnectionError):
    """A file that napari-histo fetches once (sample slide, weights) could not be fetched."""


class InvalidImageError(HistoError, ValueError):
    """An image array has the wrong layout or dtype (grayscale, RGBA, 16-bit ...) for the operation."""


class NoTissueError(HistoError, ValueError):
    """An image or slide holds no tissue where the operation needs some (e.g. a stain reference)."""


class MissingDependencyError(HistoError, ImportError):
    """An optional package (torch, qupath_bridge ...) is needed and not installed."""


class InvalidParameterError(HistoError, ValueError):
    """A setting is out of its range (a fraction above 1, a negative µm/px ...); the message names it."""


class DeviceUnavailableError(HistoError, RuntimeError):
    """The compute device asked for (e.g. ``cuda``) does not exist on this machine."""


class TrainingFailedError(HistoError, RuntimeError):
    """A training run (e.g. fine-tuning in a child process) ended with an error; the message has its log."""


class MemoryBudgetError(HistoError, MemoryError):
    """An operation would allocate more memory than allowed; the message gives the size and the fix."""


class UnsupportedModelError(HistoError, ValueError):
    """A model folder or weight file napari-histo does not load (pickle, TorchScript, WSInfer ...)."""


class FileAccessError(HistoError, PermissionError):
    """A file exists but this user may not read it (permissions); the message says how to fix that."""
