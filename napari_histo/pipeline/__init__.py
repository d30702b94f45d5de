"""Slide-level work, one verb per job, shared by the CLI, the napari docks, the demo and cohorts.

Start from a :class:`SlideSession` (a slide opened once, with its µm/px) and a
:class:`ModelHandle` (a model resolved once); every long verb is a generator
that yields :class:`~napari_histo.core.progress.Progress` and returns its
result (:func:`run_to_end` drives one to its end)::

    from napari_histo.pipeline import open_session, resolve_model, predict_slide, run_to_end

    with open_session("slide.svs") as session:
        result = run_to_end(predict_slide(session, resolve_model("pcam-mobilenetv2")))

=====================  ===================================================
job                    verb (module)
=====================  ===================================================
tissue and tile grid   ``tissue_grid``, ``model_tissue_grid`` (tissue)
predict                ``predict_slide``, ``predict_grid``,
                       ``predict_in_order`` (predict)
explain                ``gradcam_tiles``, ``gradcam_mosaic`` (explain)
stain                  ``fit_stain_on_slide``, ``stain_normalizer`` (stain)
tile exports           ``export_slide_tiles``, ``export_tiles``,
                       ``export_labelled_tiles`` (tiles)
correct and retrain    ``finetune``, ``finetune_and_predict`` (finetune)
QuPath                 ``write_tiles_geojson``, ``write_prediction_geojson``,
                       ``read_annotation_regions`` (qupath)
a whole slide job      ``run_slide_job`` (slide_job)
tile embeddings        ``embed_slide``, ``read_embeddings`` (embed)
slide-level (MIL)      ``predict_slide_level``, ``run_slide_level``
                       (slide_level)
the demo               ``run_journey`` (journey)
=====================  ===================================================

Names are imported on first use, so ``import napari_histo.pipeline`` is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOME = {
    "Progress": "napari_histo.core.progress",
    "run_to_end": "napari_histo.core.progress",
    "SlideSession": "napari_histo.pipeline.session",
    "open_session": "napari_histo.pipeline.session",
    "ModelHandle": "napari_histo.pipeline.model",
    "resolve_model": "napari_histo.pipeline.model",
    "builtin_model_names": "napari_histo.pipeline.model",
    "TissueGrid": "napari_histo.pipeline.tissue",
    "tissue_grid": "napari_histo.pipeline.tissue",
    "model_tissue_grid": "napari_histo.pipeline.tissue",
    "Region": "napari_histo.pipeline.predict",
    "predict_slide": "napari_histo.pipeline.predict",
    "predict_grid": "napari_histo.pipeline.predict",
    "predict_in_order": "napari_histo.pipeline.predict",
    "gradcam_tiles": "napari_histo.pipeline.explain",
    "gradcam_mosaic": "napari_histo.pipeline.explain",
    "fit_stain_on_slide": "napari_histo.pipeline.stain",
    "stain_normalizer": "napari_histo.pipeline.stain",
    "export_slide_tiles": "napari_histo.pipeline.tiles",
    "export_tiles": "napari_histo.pipeline.tiles",
    "export_labelled_tiles": "napari_histo.pipeline.tiles",
    "finetune": "napari_histo.pipeline.finetune",
    "finetune_and_predict": "napari_histo.pipeline.finetune",
    "write_tiles_geojson": "napari_histo.pipeline.qupath",
    "write_prediction_geojson": "napari_histo.pipeline.qupath",
    "read_annotation_regions": "napari_histo.pipeline.qupath",
    "SlideJob": "napari_histo.pipeline.slide_job",
    "run_slide_job": "napari_histo.pipeline.slide_job",
    "run_journey": "napari_histo.pipeline.journey",
    "embed_slide": "napari_histo.pipeline.embed",
    "read_embeddings": "napari_histo.pipeline.embed",
    "predict_slide_level": "napari_histo.pipeline.slide_level",
    "run_slide_level": "napari_histo.pipeline.slide_level",
}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'napari_histo.pipeline' has no attribute {name!r}")
