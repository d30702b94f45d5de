"""napari-histo: whole-slide images in napari, tissue, stain, models and QuPath.

Kept empty on purpose: napari imports this package for every manifest entry,
so importing anything heavy here would slow napari's start-up.
"""

__version__ = "0.1.0"
