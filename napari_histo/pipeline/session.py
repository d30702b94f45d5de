"""A slide opened once, with the µm/px its work uses: what every pipeline verb starts from.

The CLI opens a :class:`SlideSession` per slide; the napari reader keeps one on
each slide layer, so the docks share one open file (and its decoded-tile
cache) instead of re-opening a path in every worker.  The µm/px comes from the
file or from the user — never from a silent default: verbs that place tiles
ask :meth:`SlideSession.require_mpp`, which says how to give one.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from napari_histo.errors import InvalidParameterError, MissingMppError
from napari_histo.io import Slide, open_slide

__all__ = ["SlideSession", "check_mpp", "open_session"]


@dataclass(frozen=True)
class SlideSession:
    """An open slide and the level-0 µm/px to use with it.

    Attributes
    ----------
    slide : Slide
    user_mpp : float or None
        Level-0 µm/px given by the user; wins over the file's.
    """

    slide: Slide
    user_mpp: float | None = None

    @property
    def path(self) -> Path:
        return self.slide.path

    @property
    def name(self) -> str:
        return self.slide.path.name

    @property
    def mpp(self) -> float | None:
        """Level-0 µm/px: the user's, else the file's, else ``None``."""
        return self.user_mpp if self.user_mpp is not None else self.slide.mpp

    @property
    def mpp_source(self) -> str:
        return "user" if self.user_mpp is not None else self.slide.mpp_source

    def require_mpp(self, purpose: str = "tiles at a µm/px") -> float:
        """The level-0 µm/px, or :class:`MissingMppError` saying how to give one."""
        if self.mpp is None:
            raise MissingMppError(
                f"{self.name} has no µm/px in its metadata, so {purpose} cannot be placed; give the slide's "
                "level-0 µm/px: --slide-mpp 0.25 (CLI), 'slide µm/px' in the napari dock, or "
                "open_session(path, mpp=0.25) (Python)"
            )
        return self.mpp

    def with_mpp(self, mpp: float | None) -> SlideSession:
        """The same open slide with a user µm/px (``None``: the file's again)."""
        return replace(self, user_mpp=None if mpp is None else check_mpp(mpp))

    def close(self) -> None:
        self.slide.close()

    def __enter__(self) -> SlideSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_mpp(mpp: float, name: str = "slide µm/px") -> float:
    """``mpp`` as a float if it is a plausible µm/px (0 < mpp ≤ 1000), else an error naming it."""
    value = float(mpp)
    if not (math.isfinite(value) and 0 < value <= 1000):
        raise InvalidParameterError(
            f"{name} must be a positive number of micrometres per pixel (e.g. 0.25 for a 40x scan), "
            f"got {mpp!r}"
        )
    return value


def open_session(
    path: str | os.PathLike[str],
    mpp: float | None = None,
    *,
    on_error: Literal["raise", "fill"] = "fill",
    backend: str = "auto",
) -> SlideSession:
    """Open ``path`` once for slide-level work; ``mpp`` overrides (or supplies) the file's µm/px.

    ``on_error="fill"`` paints an undecodable tile as background with a warning,
    so one damaged tile does not stop a whole-slide job.  ``backend`` picks
    what reads the slide (see :func:`~napari_histo.io.open_slide`).
    """
    user_mpp = None if mpp is None else check_mpp(mpp)
    return SlideSession(open_slide(path, on_error=on_error, backend=backend), user_mpp)
