"""Pure array functions: tissue detection, tiling, stain normalisation, stitching.

* :mod:`~napari_histo.core.tissue` — ``detect_tissue(rgb, method)`` → bool mask (HSV / Otsu, pen and
  artefact rejection, morphological clean-up).
* :mod:`~napari_histo.core.tiling` — ``plan_tile_grid`` at a target µm/px → ``TileGrid``; tissue
  fraction per tile from a low-resolution mask.
* :mod:`~napari_histo.core.tile_labels` — tile classes from annotated polygons (centre or majority).
* :mod:`~napari_histo.core.stain` — Macenko, Vahadane and Reinhard: ``fit_stain`` / ``normalize_stain``,
  parameters as JSON (the torch version is :mod:`napari_histo.models.stain_torch`).

Nothing here reads files or imports dask, zarr, torch or napari (import-linter checks it).
"""
