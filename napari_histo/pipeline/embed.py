"""Tile embeddings of a slide: one vector per tissue tile, stored as a chunked, resumable zarr table.

``OUT/<slide stem>.embeddings.zarr`` (a zarr v2 group) holds::

    features  (n, d) float16   one embedding per tile
    coords    (n, 2) int64     level-0 (row, col) of each tile's top-left corner
    tissue    (n,)   float32   the tile's tissue fraction
    done      (n,)   bool      which rows are written (resume)
    attrs: encoder, encoder_hash, encoder_source, feature_dim, mpp, tile_px, stride_px_level0,
           slide_mpp, slide, slide_shape, complete, napari_histo_version, settings

The table is written under ``<name>.partial`` batch by batch and renamed when
every row is done, so a ``.embeddings.zarr`` is always complete and a killed
run goes on where it stopped.  ``attrs["settings"]`` records what made it
(slide, encoder weights, µm/px, tile size, tissue fraction): a re-run with other
settings is refused (or, with ``overwrite``, replaces it) rather than mixing rows.

Tiles are read from the pyramid level nearest the µm/px and decoded in threads
by the same reader as tile classification (:func:`napari_histo.models.engine.read_batches`),
and run through the encoder on the device in batches.
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_histo import __version__
from napari_histo.errors import InvalidParameterError, NoTissueError
from napari_histo.io.files import settings_changes, source_bytes
from napari_histo.models.engine import InferenceConfig, InferenceProgress
from napari_histo.pipeline.session import SlideSession, open_session
from napari_histo.pipeline.tiles import EarlierOutputsWarning, slide_stem
from napari_histo.pipeline.tissue import check_fraction, plan_grid, slide_tissue_mask, tissue_tiles

if TYPE_CHECKING:  # without importing torch at module import
    from napari_histo.models.encoders import Encoder

__all__ = [
    "EMBEDDINGS_SUFFIX",
    "EmbedSettings",
    "Embeddings",
    "embed_slide",
    "embed_task",
    "embeddings_path",
    "read_embeddings",
]

EMBEDDINGS_SUFFIX = ".embeddings.zarr"
_CHUNK_BYTES = 8 << 20  # about 8 MB of features per chunk


@dataclass(frozen=True)
class Embeddings:
    """A finished embedding table (:func:`read_embeddings`)."""

    features: np.ndarray  # (n, d) float32
    coords: np.ndarray  # (n, 2) int64, level-0 (row, col) of each tile's top-left corner
    tissue: np.ndarray  # (n,) float32
    attrs: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.coords)


@dataclass(frozen=True)
class EmbedSettings:
    """How to embed: the tile geometry (``None``: the encoder's own) and how to run."""

    mpp: float | None = None
    tile_px: int | None = None
    overlap_px: int = 0
    min_tissue: float = 0.5
    batch_size: int = 64
    workers: int = 4
    device: str = "auto"
    overwrite: bool = False


def embeddings_path(slide_path: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """``out_dir/<slide stem>.embeddings.zarr``."""
    return Path(out_dir) / f"{slide_stem(slide_path)}{EMBEDDINGS_SUFFIX}"


def read_embeddings(path: str | os.PathLike[str]) -> Embeddings:
    """A finished ``.embeddings.zarr`` table: features as float32, coordinates, tissue fractions, attrs."""
    import zarr

    path = Path(path)
    if not path.is_dir():
        partial = path.with_name(path.name + ".partial")
        hint = " (an unfinished run is there: run histo embed again to finish it)" if partial.exists() else ""
        raise InvalidParameterError(f"{path}: no embedding table here{hint}; make one with histo embed")
    try:
        group: Any = zarr.open_group(str(path), mode="r")
        attrs = dict(group.attrs)
        features = np.asarray(group["features"][:], dtype=np.float32)
        coords = np.asarray(group["coords"][:], dtype=np.int64)
        tissue = np.asarray(group["tissue"][:], dtype=np.float32)
    except (KeyError, ValueError, OSError) as exc:
        raise InvalidParameterError(
            f"{path}: not a readable embedding table ({type(exc).__name__}: {exc}); make it again with "
            "histo embed"
        ) from exc
    if not attrs.get("complete"):
        raise InvalidParameterError(f"{path}: the embedding table is not complete; run histo embed again")
    return Embeddings(features, coords, tissue, attrs)


def _settings(session: SlideSession, encoder: Encoder, grid: Any, min_tissue: float) -> dict[str, Any]:
    return {
        "slide": session.name,
        "slide_bytes": source_bytes(session.slide.source),
        "slide_mpp": session.mpp,
        "encoder": encoder.name,
        "encoder_hash": encoder.hash,
        "mpp": float(grid.target_mpp),
        "tile_px": int(grid.tile_px),
        "overlap_px": int(grid.overlap_px),
        "min_tissue": float(min_tissue),
    }


_SETTING_NAMES = {
    "slide_bytes": "slide file size", "slide_mpp": "--slide-mpp", "encoder": "--encoder",
    "encoder_hash": "encoder weights", "mpp": "--mpp", "tile_px": "--tile-px", "overlap_px": "--overlap-px",
    "min_tissue": "--min-tissue",
}  # fmt: skip


def embed_slide(
    session: SlideSession,
    encoder: Encoder | str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str],
    settings: EmbedSettings | None = None,
) -> Generator[InferenceProgress, None, Path]:
    """Embed every tissue tile of ``session``: yields progress per batch, returns the table's path.

    ``encoder`` is an :class:`~napari_histo.models.encoders.Encoder` or what
    :func:`~napari_histo.models.encoders.load_encoder` takes (``None``: the shipped
    default).  A finished table made with the same settings is returned as is; one
    made with other settings raises :class:`InvalidParameterError` naming what changed
    (``settings.overwrite`` replaces it).
    """
    from napari_histo.models.encoders import Encoder as EncoderType
    from napari_histo.models.encoders import encode_batch, load_encoder
    from napari_histo.models.engine import read_batches
    from napari_histo.models.loading import resolve_device

    settings = settings or EmbedSettings()
    check_fraction(settings.min_tissue)
    device = resolve_device(settings.device)
    if not isinstance(encoder, EncoderType):
        encoder = load_encoder(encoder, device)
    mpp = settings.mpp if settings.mpp is not None else encoder.mpp
    tile_px = settings.tile_px if settings.tile_px is not None else (encoder.tile_px or encoder.input_size)
    if mpp is None:
        raise InvalidParameterError(
            f"the encoder {encoder.name} does not say which µm/px it was trained at; give --mpp (e.g. 0.5)"
        )
    grid = plan_grid(session, float(mpp), int(tile_px), int(settings.overlap_px))
    if len(grid) == 0:
        raise NoTissueError(f"{session.name} is smaller than one tile of {tile_px} px at {mpp:g} µm/px")
    session.slide.reserve_tile_rows(grid.level)
    kept, fractions = tissue_tiles(grid, slide_tissue_mask(session), settings.min_tissue)
    if len(kept) == 0:
        raise NoTissueError(
            f"{session.name}: no tile of {tile_px} px at {mpp:g} µm/px has at least "
            f"{settings.min_tissue:.0%} tissue; lower --min-tissue (e.g. 0.1) or check the slide"
        )
    out = embeddings_path(session.path, out_dir)
    wanted = _settings(session, encoder, kept, settings.min_tissue)
    if _finished(out, wanted, settings.overwrite, session.name):
        yield InferenceProgress(len(kept), len(kept), "embedded (already done)")
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    group = _open_partial(out, encoder, kept, fractions, wanted, session)
    done_flags = np.asarray(group["done"][:], bool)
    todo = np.flatnonzero(~done_flags)
    features, done_array = group["features"], group["done"]
    config = InferenceConfig(device=str(device), batch_size=settings.batch_size, workers=settings.workers)
    start = time.perf_counter()
    done = len(kept) - len(todo)
    yield InferenceProgress(done, len(kept), "embedding", elapsed_s=0.0)
    for indices, batch in read_batches(
        session.slide, kept, todo, max(1, settings.batch_size), settings.workers
    ):
        vectors = encode_batch(encoder, batch, device, config)
        features.set_orthogonal_selection((indices, slice(None)), vectors.astype(np.float16))
        done_array.set_orthogonal_selection(indices, True)
        done += len(indices)
        yield InferenceProgress(done, len(kept), "embedding", elapsed_s=time.perf_counter() - start)
    group.attrs["complete"] = True
    partial = out.with_name(out.name + ".partial")
    if out.exists():  # an earlier table replaced (overwrite): only now that the new one is complete
        shutil.rmtree(out)
    os.replace(partial, out)
    return out


def _finished(out: Path, wanted: dict[str, Any], overwrite: bool, name: str) -> bool:
    """``True`` when ``out`` is complete with these settings; refuses (or clears, with overwrite) others."""
    if not out.is_dir():
        return False
    recorded = _recorded_settings(out)
    changes = (
        settings_changes(recorded or {}, wanted, _SETTING_NAMES) if recorded is not None else ["unknown"]
    )
    if not changes:
        return True
    changed = "; ".join(changes)
    if not overwrite:
        raise InvalidParameterError(
            f"{out} was made with other settings ({changed}): write to another folder (--out), or add "
            f"--overwrite to embed {name} again and replace it"
        )
    warnings.warn(f"--overwrite: replacing {out}, made with other settings ({changed})",
                  EarlierOutputsWarning,
                  stacklevel=3)  # fmt: skip
    return False


def _recorded_settings(path: Path) -> dict[str, Any] | None:
    import zarr

    try:
        value = zarr.open_group(str(path), mode="r").attrs.get("settings")
    except (OSError, ValueError, KeyError):
        return None
    return dict(value) if isinstance(value, dict) else None


def _open_partial(
    out: Path,
    encoder: Encoder,
    grid: Any,
    fractions: np.ndarray,
    wanted: dict[str, Any],
    session: SlideSession,
) -> Any:
    """The ``.partial`` group to write into: resumed when its settings and tiles match, else made afresh."""
    import zarr

    partial = out.with_name(out.name + ".partial")
    n, d = len(grid), int(encoder.feature_dim)
    coords = np.asarray(grid.origins_rc, np.int64).reshape(n, 2)
    if partial.exists():
        try:
            group: Any = zarr.open_group(str(partial), mode="r+")
            same = (
                dict(group.attrs.get("settings") or {}) == _as_json(wanted)
                and group["features"].shape == (n, d)
                and np.array_equal(np.asarray(group["coords"][:]), coords)
            )
            if same:
                return group
            warnings.warn(
                f"{session.name}: the interrupted embedding in {out.parent} used other settings; "
                "starting afresh",
                EarlierOutputsWarning,
                stacklevel=4,
            )
        except (OSError, ValueError, KeyError):  # an unreadable partial table is simply started again
            pass
        shutil.rmtree(partial)
    group = zarr.open_group(str(partial), mode="w", zarr_format=2)
    rows = max(1, min(n, _CHUNK_BYTES // max(1, 2 * d)))
    group.create_array("features", shape=(n, d), chunks=(rows, d), dtype="float16", fill_value=0)
    group.create_array("coords", shape=(n, 2), chunks=(max(1, min(n, 65536)), 2), dtype="int64")[:] = coords
    tissue = group.create_array("tissue", shape=(n,), chunks=(max(1, min(n, 65536)),), dtype="float32")
    tissue[:] = np.asarray(fractions, np.float32)
    group.create_array("done", shape=(n,), chunks=(rows,), dtype="bool", fill_value=False)
    rows_px, cols_px = session.slide.dimensions
    group.attrs.update(
        {
            **encoder.describe(),
            "feature_dim": d,
            "mpp": float(grid.target_mpp),
            "tile_px": int(grid.tile_px),
            "stride_px_level0": float(grid.stride_px_level0),
            "tile_px_level0": float(grid.tile_px_level0),
            "slide_mpp": float(grid.slide_mpp),
            "slide": session.name,
            "slide_shape": [int(rows_px), int(cols_px)],
            "level": int(grid.level),
            "complete": False,
            "napari_histo_version": __version__,
            "settings": _as_json(wanted),
        }
    )
    return group


def _as_json(value: dict[str, Any]) -> dict[str, Any]:
    import json

    result: dict[str, Any] = json.loads(json.dumps(value))
    return result


# ------------------------------------------------------------------------------ the cohort / CLI task

_ENCODERS: dict[tuple[str, str, str], Any] = {}


def _encoder(options: dict[str, Any], device: str) -> Any:
    """The encoder of ``options``, loaded once per process (a cohort worker embeds many slides)."""
    from napari_histo.models.encoders import Encoder as EncoderType
    from napari_histo.models.encoders import load_encoder

    given = options.get("encoder")
    if isinstance(given, EncoderType):
        return given
    key = (os.fspath(given or ""), str(options.get("architecture") or ""), device)
    if key not in _ENCODERS:
        _ENCODERS[key] = load_encoder(given, device, architecture=options.get("architecture"))
    return _ENCODERS[key]


def embed_task(
    path: Path | str,
    out_dir: Path,
    options: dict[str, Any],
    slide_mpp: float | None,
    overwrite: bool,
    device: str,
) -> Generator[Any, None, tuple[str, int]]:
    """The cohort's ``embed`` job on one slide: ``("done" | "skipped", tiles)``."""
    out = embeddings_path(path, out_dir)
    existed = out.is_dir()
    settings = EmbedSettings(
        mpp=options.get("mpp"),
        tile_px=options.get("tile_px"),
        min_tissue=float(options.get("min_tissue", 0.5)),
        batch_size=int(options.get("batch_size", 64)),
        workers=int(options.get("workers", 4)),
        device=device,
        overwrite=overwrite,
    )
    encoder = _encoder(options, device)
    with open_session(path, slide_mpp, backend=str(options.get("backend") or "auto")) as session:
        last = None
        work = embed_slide(session, encoder, out_dir, settings)
        while True:
            try:
                last = next(work)
            except StopIteration:
                break
            yield last
    tiles = last.total if last is not None else 0
    skipped = existed and last is not None and last.stage == "embedded (already done)"
    return ("skipped" if skipped else "done"), int(tiles)
