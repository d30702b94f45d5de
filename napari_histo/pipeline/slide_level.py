"""Slide-level prediction: a MIL model on a slide's tile embeddings → a call, its probability, attention.

:func:`predict_slide_level` reads a ``.embeddings.zarr`` table (:mod:`napari_histo.pipeline.embed`)
and a MIL model directory (:mod:`napari_histo.models.mil`), refuses a table made by another encoder
than the one the model was trained on, and returns the class probabilities, the call, and the
attention (and per-tile scores) of every tile.  :func:`write_slide_level_outputs` writes
``NAME.slide.json`` and ``NAME.attention.geojson`` (QuPath tiles with an ``attention`` measurement
and a score per class).
"""

from __future__ import annotations

import json
import os
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_histo.core.tiling import TileGrid
from napari_histo.errors import InvalidParameterError
from napari_histo.io.files import write_bytes_atomic
from napari_histo.pipeline.embed import Embeddings, read_embeddings
from napari_histo.pipeline.session import SlideSession

__all__ = [
    "AttentionMap",
    "SlideLevelResult",
    "attention_map",
    "check_encoder_matches",
    "embeddings_grid",
    "predict_slide_level",
    "run_slide_level",
    "slide_level_on_session",
    "slide_level_outputs",
    "write_slide_level_outputs",
]


@dataclass(frozen=True)
class SlideLevelResult:
    """A slide-level model's answer for one slide."""

    slide: str
    model: str
    class_names: tuple[str, ...]
    probabilities: np.ndarray  # (C,)
    attention: np.ndarray  # (n,), sums to 1
    tile_scores: np.ndarray | None  # (n, C) per-tile class probabilities, when the model gives them
    embeddings: Embeddings
    class_colors: tuple[tuple[int, int, int], ...] = ()

    @property
    def call(self) -> str:
        return self.class_names[int(np.argmax(self.probabilities))]

    @property
    def probability(self) -> float:
        return float(np.max(self.probabilities))

    def summary(self) -> dict[str, Any]:
        """What ``NAME.slide.json`` holds."""
        attrs = self.embeddings.attrs
        top = np.argsort(self.attention)[::-1][:10]
        return {
            "slide": self.slide,
            "model": self.model,
            "task": "mil",
            "call": self.call,
            "probability": round(self.probability, 6),
            "probabilities": {n: round(float(p), 6) for n, p in zip(self.class_names, self.probabilities)},
            "n_tiles": len(self.attention),
            "encoder": {k: attrs.get(k) for k in ("encoder", "encoder_hash", "mpp", "tile_px")},
            "top_attention_tiles": [
                {
                    "row": int(self.embeddings.coords[i, 0]),
                    "col": int(self.embeddings.coords[i, 1]),
                    "attention": round(float(self.attention[i]), 6),
                }
                for i in top
            ],
        }


def check_encoder_matches(spec: Any, attrs: dict[str, Any], table: str = "the embeddings") -> None:
    """Refuse (one line) embeddings from another encoder than the MIL model ``spec`` was trained on."""
    trained = dict(spec.provenance.get("encoder") or {})
    name, digest = trained.get("name"), trained.get("hash")
    same = (digest == attrs.get("encoder_hash")) if digest else (name == attrs.get("encoder"))
    if not same:
        raise InvalidParameterError(
            f"{table} were made by encoder {attrs.get('encoder')!r} "
            f"({str(attrs.get('encoder_hash'))[:12]}) but "
            f"the slide-level model was trained on {name!r} ({str(digest)[:12]}); embed the slide with "
            f"histo embed --encoder {name} (the model's encoder) and predict again"
        )
    if attrs.get("feature_dim") is not None:
        wanted = int(spec.provenance.get("mil", {}).get("in_features", attrs["feature_dim"]))
        if int(attrs["feature_dim"]) != wanted:
            raise InvalidParameterError(
                f"{table} have {attrs['feature_dim']} features per tile but the model takes {wanted}"
            )


def predict_slide_level(
    embeddings_path: str | os.PathLike[str], mil_model_dir: str | os.PathLike[str], device: str = "cpu"
) -> SlideLevelResult:
    """The MIL model's call on one slide's embedding table (see the module docstring)."""
    from napari_histo.models.bag import forward_bag
    from napari_histo.models.mil import load_mil_model

    embeddings = read_embeddings(embeddings_path)
    network, spec = load_mil_model(mil_model_dir, device=device)
    check_encoder_matches(spec, embeddings.attrs, str(embeddings_path))
    if len(embeddings) == 0:
        raise InvalidParameterError(f"{embeddings_path}: holds no tiles; nothing to predict from")
    out = forward_bag(network, embeddings.features, device)
    return SlideLevelResult(
        str(embeddings.attrs.get("slide", Path(embeddings_path).name)), spec.name or Path(mil_model_dir).name,
        tuple(spec.class_names), out["probabilities"], out["attention"], out.get("tile_probabilities"),
        embeddings, tuple(spec.class_colors),
    )  # fmt: skip


def embeddings_grid(embeddings: Embeddings) -> TileGrid:
    """The tiles of an embedding table as a :class:`TileGrid` (for QuPath objects and heatmaps)."""
    a = embeddings.attrs
    slide_mpp, mpp = float(a["slide_mpp"]), float(a["mpp"])
    overlap = int((a.get("settings") or {}).get("overlap_px", 0))
    rows, cols = (int(v) for v in a["slide_shape"])
    return TileGrid(embeddings.coords, (rows, cols), slide_mpp, mpp, int(a["tile_px"]), overlap,
                    int(a.get("level", 0)), 1.0)  # fmt: skip


def slide_level_outputs(stem: str, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    out = Path(out_dir)
    return {"json": out / f"{stem}.slide.json", "geojson": out / f"{stem}.attention.geojson"}


def write_slide_level_outputs(
    result: SlideLevelResult, out_dir: str | os.PathLike[str], stem: str
) -> dict[str, Path]:
    """``NAME.slide.json`` (call, probabilities, most attended tiles) and ``NAME.attention.geojson``."""
    from napari_histo.pipeline.qupath import write_tiles_geojson

    outputs = slide_level_outputs(stem, out_dir)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(outputs["json"], (json.dumps(result.summary(), indent=2) + "\n").encode())
    measurements = {"attention": result.attention,
                    "attention_rank_fraction": _rank_fraction(result.attention)}  # fmt: skip
    kwargs: dict[str, Any] = {"measurements": measurements}
    if result.tile_scores is not None:
        kwargs.update(probabilities=result.tile_scores, class_names=result.class_names,
                      class_colors=result.class_colors or None)  # fmt: skip
    write_tiles_geojson(outputs["geojson"], embeddings_grid(result.embeddings), result.slide, **kwargs)
    return outputs


def _rank_fraction(values: np.ndarray) -> np.ndarray:
    """0 for the least attended tile, 1 for the most (comparable between slides of different sizes)."""
    n = len(values)
    ranks = np.empty(n, np.float64)
    ranks[np.argsort(values)] = np.arange(n)
    return ranks / max(1, n - 1)


def run_slide_level(
    slide_path: str | os.PathLike[str],
    mil_model_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    slide_mpp: float | None = None,
    backend: str = "auto",
    **options: Any,
) -> Generator[Any, None, SlideLevelResult]:
    """``histo predict`` with a MIL model: embed the slide with the model's encoder, then predict.

    The table ``NAME.embeddings.zarr`` in ``out_dir`` is reused when it is finished with the same
    settings (and resumed when a run was killed); the outputs are those of
    :func:`write_slide_level_outputs`.  Yields the embedding progress.  ``options``: ``device``,
    ``batch_size``, ``workers``, ``min_tissue``, ``overwrite`` (see :func:`slide_level_on_session`).
    """
    from napari_histo.pipeline.session import open_session

    with open_session(slide_path, slide_mpp, backend=backend) as session:
        return (yield from slide_level_on_session(session, mil_model_dir, out_dir, **options))


def slide_level_on_session(
    session: SlideSession,
    mil_model_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    device: str = "auto",
    batch_size: int = 64,
    workers: int = 4,
    min_tissue: float = 0.5,
    overwrite: bool = False,
) -> Generator[Any, None, SlideLevelResult]:
    """:func:`run_slide_level` on an open slide session (the napari dock's)."""
    from napari_histo.models.encoders import load_recorded_encoder
    from napari_histo.models.loading import resolve_device
    from napari_histo.models.mil import load_mil_model
    from napari_histo.pipeline.embed import EmbedSettings, embed_slide
    from napari_histo.pipeline.tiles import slide_stem

    _, spec = load_mil_model(mil_model_dir, device="cpu")
    trained = dict(spec.provenance.get("encoder") or {})
    encoder = load_recorded_encoder(trained, device)
    if trained.get("hash") and trained["hash"] != encoder.hash:
        raise InvalidParameterError(
            f"{mil_model_dir}: was trained on embeddings of encoder {trained.get('name')!r} with weights "
            f"{str(trained['hash'])[:12]}, but {encoder.name!r} here has weights {encoder.hash[:12]}; "
            "use the same encoder files the model was trained with"
        )
    settings = EmbedSettings(
        mpp=trained.get("mpp") or spec.spacing_um_px,
        tile_px=trained.get("tile_px") or spec.patch_size_pixels,
        min_tissue=min_tissue, batch_size=batch_size, workers=workers, device=device, overwrite=overwrite,
    )  # fmt: skip
    table = yield from embed_slide(session, encoder, out_dir, settings)
    result = predict_slide_level(table, mil_model_dir, device=str(resolve_device(device)))
    write_slide_level_outputs(result, out_dir, slide_stem(session.path))
    return result


@dataclass(frozen=True)
class _ClassNames:
    class_names: tuple[str, ...]


@dataclass(frozen=True)
class AttentionMap:
    """A slide-level result's attention as a one-"class" tile map (scaled so the top tile is 1).

    Shaped like :class:`~napari_histo.models.engine.TilePredictions` (``spec.class_names``,
    ``grid``, ``probabilities``) so the heatmap layers of tile predictions show it.
    """

    spec: _ClassNames
    grid: TileGrid
    probabilities: np.ndarray  # (n, 1)


def attention_map(result: SlideLevelResult) -> AttentionMap:
    attention = np.asarray(result.attention, np.float32)
    top = float(attention.max()) if len(attention) else 1.0
    scaled = attention / top if top > 0 else attention
    return AttentionMap(_ClassNames(("attention",)), embeddings_grid(result.embeddings), scaled[:, None])
