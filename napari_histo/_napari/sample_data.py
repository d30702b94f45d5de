"""napari sample data: a synthetic H&E slide (offline) and CMU-1-Small-Region."""

from __future__ import annotations

from typing import Any

from napari_histo.data import cmu_small_region_path, synthetic_slide_path
from napari_histo.pipeline.session import open_session

__all__ = ["cmu_small_region", "synthetic_slide"]


def synthetic_slide() -> list[tuple[Any, dict[str, Any], str]]:
    """The synthetic H&E pyramid, generated once into the user cache."""
    from napari_histo._napari.reader import slide_layer_data

    return [slide_layer_data(open_session(synthetic_slide_path()))]


def cmu_small_region() -> list[tuple[Any, dict[str, Any], str]]:
    """OpenSlide's CMU-1-Small-Region (CC0), downloaded once into the user cache."""
    from napari_histo._napari.reader import slide_layer_data

    return [slide_layer_data(open_session(cmu_small_region_path()))]
