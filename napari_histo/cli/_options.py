"""Every option's range, in one place: click parameter types that refuse bad values at the CLI edge.

A bad value ends before any slide is opened or torch is imported, as click's
usage error (exit code 2) naming the option, the value and the accepted range.
Each ``histo`` command takes its option types from here, so ``--slide-mpp``
means the same range in ``tiles``, ``predict`` and ``info``.
"""

from __future__ import annotations

import errno
import math
import os
import re
from pathlib import Path
from typing import Any

import click

__all__ = [
    "BACKEND",
    "BACKEND_HELP",
    "BATCH_SIZE",
    "DEVICE",
    "DOWNSAMPLE",
    "FRACTION",
    "LEVEL",
    "MAGNIFICATION",
    "MPP",
    "OVERLAP_PX",
    "SHAPE",
    "SHARD",
    "TILE_PX",
    "WORKERS",
    "BoundedFloat",
    "DeviceType",
    "ExistingFile",
    "ShapeType",
    "ShardType",
    "check_device_available",
    "require_pair",
]

#: µm/px accepted for a slide or for tiles: 10 nm (finer than any light microscope resolves) to 1 mm
MPP_RANGE = (0.01, 1000.0)


class BoundedFloat(click.ParamType):
    """A finite float in ``[low, high]`` (``low`` excluded when ``open_low``); NaN and ±inf refused."""

    name = "float"

    def __init__(self, low: float, high: float, *, open_low: bool = False, what: str = "", example: str = ""):
        self.low, self.high, self.open_low = low, high, open_low
        self.what, self.example = what, example

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float) and math.isfinite(value) and self._inside(value):
            return value
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number; {self._expected()}", param, ctx)
        if not (math.isfinite(number) and self._inside(number)):
            self.fail(f"got {value}; {self._expected()}", param, ctx)
        return number

    def _inside(self, value: float) -> bool:
        return (self.low < value if self.open_low else self.low <= value) and value <= self.high

    def _expected(self) -> str:
        bound = f"{'above' if self.open_low else 'at least'} {self.low:g} and at most {self.high:g}"
        what = f"{self.what}: " if self.what else ""
        return f"expected {what}a number {bound}" + (f", e.g. {self.example}" if self.example else "")

    def __repr__(self) -> str:
        return f"BoundedFloat({self.low}, {self.high})"


class DeviceType(click.ParamType):
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, and present on this machine.

    A misspelt name is a usage error (exit 2); a device this machine lacks is
    :class:`~napari_histo.errors.DeviceUnavailableError` (exit 4).
    """

    name = "device"
    _PATTERN = re.compile(r"auto|cpu|mps|cuda(?::\d{1,3})?")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip().lower()
        if not self._PATTERN.fullmatch(text):
            self.fail(
                f"{value!r} is not a device; use auto, cpu, cuda, cuda:N (e.g. cuda:1) or mps", param, ctx
            )
        return check_device_available(text)


def check_device_available(device: str) -> str:
    """``device`` if this machine has it, else :class:`DeviceUnavailableError` with the fix (imports torch).

    ``auto`` and ``cpu`` always exist and are returned without importing torch.
    """
    if device in ("auto", "cpu"):
        return device
    import torch

    from napari_histo.errors import DeviceUnavailableError

    if device == "mps":
        backend = getattr(torch.backends, "mps", None)
        if backend is None or not backend.is_available():
            raise DeviceUnavailableError(
                "--device mps: Apple's GPU (MPS) is not available on this machine; use --device cpu or auto"
            )
        return device
    if not torch.cuda.is_available():
        why = "this PyTorch is built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise DeviceUnavailableError(
            f"--device {device}: CUDA is not available here ({why}); use --device cpu, or auto to take a "
            "GPU only when there is one"
        )
    index = int(device.partition(":")[2] or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceUnavailableError(
            f"--device {device}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}; "
            "pick one of those (nvidia-smi lists them)"
        )
    return device


class ShapeType(click.ParamType):
    """``ROWSxCOLS`` with both sizes at least 1 (memory is checked where the dtype is known)."""

    name = "ROWSxCOLS"
    _PATTERN = re.compile(r"\s*(\d{1,9})\s*[x×X,]\s*(\d{1,9})\s*")

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        match = self._PATTERN.fullmatch(str(value))
        if match is None:
            self.fail(f"expected ROWSxCOLS such as 2048x1536, got {value!r}", param, ctx)
        rows, cols = int(match[1]), int(match[2])
        if rows < 1 or cols < 1:
            self.fail(f"{value}: rows and columns must both be at least 1, e.g. 2048x1536", param, ctx)
        return rows, cols


class ShardType(click.ParamType):
    """``i/n``: every n-th item starting at i, with 0 <= i < n."""

    name = "i/n"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        match = re.fullmatch(r"\s*(\d{1,6})\s*/\s*(\d{1,6})\s*", str(value))
        if match is None:
            self.fail(f"expected i/n like 3/10 (SLURM: $SLURM_ARRAY_TASK_ID/$N), got {value!r}", param, ctx)
        index, count = int(match[1]), int(match[2])
        if not 0 <= index < count:
            self.fail(f"{value}: need 0 <= i < n (i counts from 0), e.g. 0/{max(count, 2)}", param, ctx)
        return index, count


class MissingInputError(click.BadParameter):
    """An input file that is not there (or not a file): exit code 3, as when a command finds it later."""

    exit_code = 3  # EXIT_INPUT of cli/_report.py (not imported: that module loads more)


class ExistingFile(click.Path):
    """An existing file (not a folder), as a :class:`~pathlib.Path`; says *why* a path is unusable.

    click's own check calls a symbolic-link loop or a dangling link "does not exist";
    this one names the loop, the missing target or the folder given for a file.  Each
    ends the command with exit code 3 (a bad input), as ``histo info`` gives for a
    missing slide, not 2 (a bad option).
    """

    def __init__(self) -> None:
        super().__init__(exists=True, dir_okay=False, path_type=Path)

    def fail(
        self, message: str, param: click.Parameter | None = None, ctx: click.Context | None = None
    ) -> Any:
        raise MissingInputError(message, ctx=ctx, param=param)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = os.fsdecode(value) if isinstance(value, (str, bytes, os.PathLike)) else str(value)
        try:
            os.stat(text)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                self.fail(
                    f"{text}: is a symbolic link that loops (it points back to itself through other links); "
                    "point it at the file, or pass the file itself",
                    param,
                    ctx,
                )
            if exc.errno == errno.ENOENT and os.path.islink(text):
                target = os.readlink(text)
                self.fail(f"{text}: is a symbolic link to {target!r}, which does not exist", param, ctx)
            if exc.errno == errno.ENOTDIR:
                self.fail(
                    f"{text}: a part of the path before the file name is a file, not a folder", param, ctx
                )
        return super().convert(value, param, ctx)


class SlideSource(ExistingFile):
    """A slide: an existing file or folder (DICOM, OME-Zarr) as a :class:`~pathlib.Path`, or a URL
    (``https://``, ``s3://``, ``gs://``, a DICOMweb series) as the text given (a ``Path`` would turn
    its ``//`` into ``/``).  What the slide holds is checked when it opens."""

    name = "slide"

    def __init__(self) -> None:
        click.Path.__init__(self, exists=True, dir_okay=True, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from napari_histo.io._remote import is_url

        if isinstance(value, str) and is_url(value):
            return value
        return super().convert(value, param, ctx)


def require_pair(first: tuple[str, object], second: tuple[str, object], fix: str) -> None:
    """Refuse ``first`` given without ``second`` (a usage error with ``fix``)."""
    (name, value), (other, other_value) = first, second
    if value is not None and other_value is None:
        raise click.UsageError(f"{name} needs {other}: {fix}")


MPP = BoundedFloat(*MPP_RANGE, what="micrometres per pixel", example="0.25 for a 40x scan, 0.5 for 20x")
MAGNIFICATION = BoundedFloat(0.01, 1000, what="objective power", example="20 (= 0.5 µm/px) or 40")
FRACTION = BoundedFloat(0.0, 1.0, what="a fraction", example="0.5")
DOWNSAMPLE = BoundedFloat(
    0.0, 100_000, open_low=True, what="level-0 pixels per label pixel", example="1, 4 or 16"
)
TILE_PX = click.IntRange(16, 8192)
OVERLAP_PX = click.IntRange(0, 8191)
WORKERS = click.IntRange(1, 256)
BATCH_SIZE = click.IntRange(1, 16384)
LEVEL = click.IntRange(min=0)
DEVICE = DeviceType()
SHAPE = ShapeType()
SHARD = ShardType()
#: ``--backend``: what reads a slide (``auto`` picks by content; see ``open_slide``)
BACKEND = click.Choice(["auto", "tifffile", "omezarr", "openslide", "wsidicom"], case_sensitive=False)
BACKEND_HELP = (
    "What reads the slide: auto (by content: tifffile for SVS/NDPI/OME-TIFF/TIFF, OpenSlide for MRXS, SCN, "
    "BIF, Philips TIFF, VMS, wsidicom for DICOM folders and DICOMweb URLs, omezarr for OME-Zarr folders), or "
    "force one."
)
