"""The QuPath-side Groovy scripts shipped with the package (``qupath_bridge/scripts``)."""

from __future__ import annotations

from importlib import resources

__all__ = ["GROOVY_SCRIPTS", "groovy_script"]

GROOVY_SCRIPTS = {
    "export": "export_objects_geojson.groovy",
    "import": "import_napari_histo_results.groovy",
}


def groovy_script(name: str) -> str:
    """Text of a shipped QuPath script, to paste into QuPath's script editor or save to a file.

    Parameters
    ----------
    name : {"export", "import"}
        ``export``: all objects of the open image → GeoJSON FeatureCollection;
        ``import``: a napari-histo result file → objects of the open image.

    Returns
    -------
    str
        The Groovy source.
    """
    if name not in GROOVY_SCRIPTS:
        raise KeyError(f"unknown script {name!r}; choose one of {sorted(GROOVY_SCRIPTS)}")
    script = resources.files("qupath_bridge").joinpath("scripts").joinpath(GROOVY_SCRIPTS[name])
    return script.read_text(encoding="utf-8")
