"""Dock widgets, one module each (kept empty so napari starts fast)."""
