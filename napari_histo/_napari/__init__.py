"""napari integration: the only package that imports napari, magicgui or Qt.

Kept empty: napari imports it for every manifest entry.
"""
