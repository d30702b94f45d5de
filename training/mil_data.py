"""Bags for slide-level (MIL) training: tile embedding tables + a slide label CSV, split by patient.

``data.root`` holds one ``<slide>.embeddings.zarr`` table per slide (written by ``histo embed``:
arrays ``features`` (n, d), ``coords`` (n, 2) level-0 row/col, ``tissue`` (n,); attrs
``encoder``, ``encoder_hash``, ``feature_dim``, ``mpp``, ``tile_px``, ``slide``, ``complete``).
``data.labels_csv`` has the columns ``slide`` (the table's stem or file name), ``label``,
``patient`` and optionally ``split`` (train/valid/test).  Without a split column, slides are
split by patient (no patient in two splits) with ``data.valid_fraction``/``test_fraction``.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from training.config import TrainingConfig
from training.samples import DataError, Samples
from training.splits import split_samples

__all__ = ["Bags", "EmbeddingTable", "load_bags", "read_table", "table_path"]

TABLE_SUFFIX = ".embeddings.zarr"


@dataclass
class EmbeddingTable:
    features: np.ndarray  # float32 (n, d)
    coords: np.ndarray  # int64 (n, 2)
    tissue: np.ndarray  # float32 (n,)
    attrs: dict[str, Any] = field(default_factory=dict)


def read_table(path: str | Path) -> EmbeddingTable:
    """One slide's embedding table, read by :func:`napari_histo.pipeline.embed.read_embeddings`."""
    from napari_histo.errors import HistoError
    from napari_histo.pipeline.embed import read_embeddings

    try:
        table = read_embeddings(path)
    except HistoError as exc:
        raise DataError(str(exc)) from exc
    return EmbeddingTable(
        np.asarray(table.features, dtype=np.float32),
        np.asarray(table.coords, dtype=np.int64),
        np.asarray(table.tissue, dtype=np.float32),
        dict(table.attrs),
    )


@dataclass
class Bags:
    """Every slide of a split: its name, label, patient and embedding table."""

    names: list[str]
    labels: np.ndarray
    patients: list[str]
    tables: list[EmbeddingTable]
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.names)

    def counts(self) -> dict[str, int]:
        return {name: int((self.labels == i).sum()) for i, name in enumerate(self.class_names)}


def table_path(root: Path, slide: str) -> Path:
    """``root/<slide>.embeddings.zarr`` (``slide`` may be the slide's file name or the table's name)."""
    name = Path(slide).name
    candidates = [root / name] if name.endswith(TABLE_SUFFIX) else []
    candidates += [root / (name + TABLE_SUFFIX), root / (Path(name).stem + TABLE_SUFFIX)]
    return next((p for p in candidates if p.exists()), candidates[0])


def _recipe_path(config: TrainingConfig, path: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_absolute() and config.recipe_path:
        p = Path(config.recipe_path).parent / p
    return p


def _read_rows(csv_path: Path) -> list[dict[str, str]]:
    if not csv_path.is_file():
        raise DataError(
            f"data.labels_csv = {str(csv_path)!r}: not found; give a CSV with slide, label, patient"
        )
    with open(csv_path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in ("slide", "label", "patient") if c not in columns]
        if missing:
            raise DataError(
                f"{csv_path}: columns {missing} are missing (has {columns}); a slide label CSV has slide, "
                "label, patient and optionally split"
            )
        return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]


def load_bags(config: TrainingConfig) -> tuple[dict[str, Bags], dict[str, Any]]:
    """``({"train", "valid"[, "test"]}: Bags, encoder)``; encoder = {name, hash, mpp, tile_px, feature_dim}.

    Refuses tables missing from ``data.root``, incomplete tables (``complete`` false), tables
    from different encoders, and a CSV whose slides repeat.
    """
    root = _recipe_path(config, config.data.root)
    if not root.is_dir():
        raise DataError(f"data.root = {config.data.root!r}: not a folder of <slide>{TABLE_SUFFIX} tables")
    rows = _read_rows(_recipe_path(config, config.data.labels_csv or "slides.csv"))
    if not rows:
        raise DataError(f"data.labels_csv = {config.data.labels_csv!r}: holds no slides")
    names = [r["slide"] for r in rows]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(f"data.labels_csv: slides {repeated[:3]} are listed more than once")
    class_names = tuple(config.data.class_names) or tuple(sorted({r["label"] for r in rows}, key=_label_key))
    unknown = sorted({r["label"] for r in rows} - set(class_names))
    if unknown:
        raise DataError(
            f"data.labels_csv: labels {unknown[:3]} are not in data.class_names {list(class_names)}"
        )
    if len(class_names) < 2:
        raise DataError(
            f"data.labels_csv: only the label(s) {list(class_names)}; a classifier needs two or more"
        )
    paths = [table_path(root, n) for n in names]
    absent = [str(p.name) for p in paths if not p.exists()]
    if absent:
        raise DataError(
            f"{len(absent)} slide(s) of data.labels_csv have no embedding table in {root} "
            f"(first: {absent[:3]}); run histo embed on them or drop them from the CSV"
        )
    tables = [read_table(p) for p in paths]
    encoder = _one_encoder(tables, paths)
    has_split = any(r.get("split") for r in rows)
    samples = Samples(
        labels=np.array([class_names.index(r["label"]) for r in rows], dtype=np.int64),
        class_names=class_names,
        paths=tuple(names),
        groups=np.array([r["patient"] or r["slide"] for r in rows]),
        split=np.array([r.get("split", "") for r in rows]) if has_split else None,
    )
    parts = split_samples(samples, replace(config.data, group_by="patient"), seed=config.train.seed)
    index = {n: i for i, n in enumerate(names)}
    out = {}
    for split, part in parts.items():
        pick = [index[n] for n in part.paths]
        out[split] = Bags(
            [names[i] for i in pick],
            part.labels,
            [str(g) for g in part.groups],  # type: ignore[union-attr]
            [tables[i] for i in pick],
            class_names,
        )
    _check_patients(out)
    return out, encoder


def _label_key(label: str) -> tuple[int, Any]:
    return (0, int(label)) if label.lstrip("-").isdigit() else (1, label)


def _one_encoder(tables: list[EmbeddingTable], paths: list[Path]) -> dict[str, Any]:
    incomplete = [p.name for p, t in zip(paths, tables) if t.attrs.get("complete") is False]
    if incomplete:
        raise DataError(
            f"embedding tables {incomplete[:3]} are incomplete (complete: false); finish histo embed"
        )
    empty = [p.name for p, t in zip(paths, tables) if len(t.features) == 0]
    if empty:
        raise DataError(f"embedding tables {empty[:3]} hold no tiles; a bag needs at least one")
    keys = {(t.attrs.get("encoder_hash"), t.features.shape[1]) for t in tables}
    if len(keys) > 1:
        raise DataError(
            f"the embedding tables come from {len(keys)} different encoders ({sorted(map(str, keys))[:3]}); "
            "embed every slide with the same encoder"
        )
    first = tables[0].attrs
    if not (first.get("mpp") and first.get("tile_px")):
        raise DataError(
            f"{paths[0].name}: attrs mpp / tile_px are missing; the model records the embeddings' tile "
            "geometry, so write the tables with histo embed"
        )
    return {
        "name": str(first.get("encoder", "")) or "unknown",
        "hash": str(first.get("encoder_hash", "")),
        "mpp": float(first["mpp"]),
        "tile_px": int(first["tile_px"]),
        "feature_dim": int(tables[0].features.shape[1]),
    }


def _check_patients(parts: dict[str, Bags]) -> None:
    seen: dict[str, str] = {}
    for split, bags in parts.items():
        for patient in set(bags.patients):
            if patient in seen and seen[patient] != split:
                raise DataError(
                    f"patient {patient!r} has slides in both {seen[patient]} and {split}; a patient's slides "
                    "belong to one split (fix the split column of data.labels_csv)"
                )
            seen[patient] = split


def bags_digest(parts: dict[str, Bags]) -> str:
    """A fingerprint of the training data: slides, labels and a hash of every bag's features, per split."""
    digest = hashlib.sha256()
    for split in sorted(parts):
        bags = parts[split]
        digest.update(f"{split}:{list(bags.class_names)}:{len(bags)}".encode())
        for name, label, table in sorted(
            zip(bags.names, bags.labels.tolist(), bags.tables), key=lambda x: x[0]
        ):
            feature_hash = hashlib.md5(np.ascontiguousarray(table.features).tobytes()).hexdigest()
            digest.update(f"{name}:{label}:{feature_hash};".encode())
    return digest.hexdigest()
