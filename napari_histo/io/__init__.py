"""Reading slides: lazy pyramids with calibration (``open_slide``)."""

from napari_histo.io.slide import (
    SLIDE_EXTENSIONS,
    LevelInfo,
    Slide,
    SlideDamageWarning,
    SlideWarning,
    open_slide,
)

__all__ = ["SLIDE_EXTENSIONS", "LevelInfo", "Slide", "SlideDamageWarning", "SlideWarning", "open_slide"]
