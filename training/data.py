"""Labelled patches from disk: class folders, IDC file names, ``tiles.csv``, label CSVs, slides + GeoJSON.

Every source becomes one :class:`Samples` (paths or in-memory pixels, integer
labels, a group per sample for slide/patient splits, a content hash for
de-duplication).  The small shared types (:class:`Samples`, :class:`DataError`,
:func:`decode_image`) live in :mod:`training.samples` and are re-exported here.
:mod:`training.splits` splits and balances them;
:class:`PatchDataset` serves uint8 (rows, cols, 3) tensors to a DataLoader.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from training.config import DataConfig
from training.samples import DataError, Samples, decode_image

__all__ = [
    "IDC_PATTERN",
    "IMAGE_EXTENSIONS",
    "DataError",
    "Samples",
    "decode_image",
    "dedup",
    "load_samples",
    "read_class_folders",
    "read_idc",
    "read_labels_csv",
    "read_tiles_csv",
    "record_class_counts",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
#: IDC convention: ``{patient}_idx5_x{X}_y{Y}_class{C}.png``
IDC_PATTERN = re.compile(r"^(?P<patient>.+?)_.*x(?P<x>\d+)_y(?P<y>\d+)_class(?P<label>\d+)\.\w+$")


def load_samples(
    config: DataConfig, base: Path, work_dir: Path | None = None, *, record: bool = True
) -> Samples:
    """The labelled patches a recipe's ``data`` section names (paths relative to ``base``).

    ``record``: print the class counts and write ``work_dir/class_counts.json`` (rank 0 only under DDP).
    """
    root = (base / config.root).resolve() if config.root else base
    if config.source == "folders":
        samples = read_class_folders(root, config.class_names)
    elif config.source == "idc":
        samples = read_idc(root, config.class_names)
    elif config.source == "tiles_csv":
        samples = read_tiles_csv(root if root.suffix == ".csv" else root / "tiles.csv", config.class_names)
    elif config.source == "labels_csv":
        csv_path = base / config.labels_csv if config.labels_csv else root / "labels.csv"
        samples = read_labels_csv(csv_path.resolve(), root, config.class_names)
    elif config.source == "slides":
        from training.slides import export_annotated_tiles

        out = (work_dir or base) / "tiles"
        export_annotated_tiles(config, base, out)
        samples = read_tiles_csv(out / "tiles.csv", config.class_names)
    else:
        from training.synthetic import synthetic_samples

        samples = synthetic_samples(config)
    _check_classes(samples, config.source)
    if config.dedup:
        samples = dedup(samples)
    if record and work_dir is not None and config.source != "synthetic_segmentation":
        record_class_counts(samples, config, work_dir)
    return samples


def record_class_counts(samples: Samples, config: DataConfig, work_dir: Path) -> dict[str, object]:
    """Print and write ``work_dir/class_counts.json``: the loaded patches per class, before any balancing.

    The counts after splitting and balancing are ``metrics.json``'s ``summary.counts`` (per split).
    """
    from training.report import write_json

    counts = samples.counts()
    record: dict[str, object] = {"before_balancing": counts, "balance": config.balance}
    if config.source.startswith("synthetic"):
        record["data"] = "synthetic stand-in (training.synthetic)"
    shown = ", ".join(f"{name} {n}" for name, n in counts.items())
    after = {
        "undersample": "the training split is undersampled to its rarest class",
        "weighted": "the training loss weights the classes",
    }.get(config.balance, "no balancing")
    print(f"class counts before balancing (all splits): {shown}; data.balance={config.balance}: {after} "
          "(counts after: metrics.json summary.counts)", flush=True)  # fmt: skip
    if Path(work_dir).is_dir():
        write_json(record, Path(work_dir) / "class_counts.json")
    return record


def read_class_folders(root: Path, class_names: Sequence[str] = ()) -> Samples:
    """``root/<class>/*.png`` or, with a fixed split, ``root/{train,valid,test}/<class>/*``."""
    if not root.is_dir():
        raise DataError(f"{root}: data folder not found; set data.root to a folder of class sub-folders")
    split_dirs = [d for d in ("train", "valid", "test") if (root / d).is_dir()]
    tops = [(root / d, d) for d in split_dirs] or [(root, "")]
    names = tuple(class_names) or tuple(
        sorted({c.name for top, _ in tops for c in top.iterdir() if c.is_dir()})
    )
    paths, labels, splits = [], [], []
    for top, split in tops:
        for label, name in enumerate(names):
            folder = top / name
            files = (
                sorted(p for p in folder.glob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
                if folder.is_dir()
                else []
            )
            if not files and (split in ("", "train")):
                raise DataError(
                    f"class folder {folder} is empty or missing; every class in {list(names)} needs patches "
                    "(remove the class from data.class_names or add images)"
                )
            paths += [str(p) for p in files]
            labels += [label] * len(files)
            splits += [split] * len(files)
    groups = [Path(p).name.split("_x")[0] for p in paths]
    return _samples(paths, labels, names, groups, splits)


def read_idc(root: Path, class_names: Sequence[str] = ()) -> Samples:
    """Patches named ``{patient}_idx5_x{X}_y{Y}_class{C}.png`` anywhere under ``root``."""
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    paths, labels, groups, skipped = [], [], [], []
    for p in files:
        match = IDC_PATTERN.match(p.name)
        if match is None:
            skipped.append(p.name)
            continue
        paths.append(str(p))
        labels.append(int(match["label"]))
        groups.append(match["patient"])
    if not paths:
        raise DataError(
            f"{root}: no file named like '<patient>_idx5_x<X>_y<Y>_class<C>.png'"
            + (f" (first file seen: {skipped[0]})" if skipped else "")
        )
    n = max(labels) + 1
    names = tuple(class_names) or tuple(f"class{i}" for i in range(n))
    if n > len(names):
        raise DataError(f"{root}: labels go up to class{n - 1} but data.class_names has {len(names)} names")
    return _samples(paths, labels, names, groups, [""] * len(paths))


def read_tiles_csv(path: Path, class_names: Sequence[str] = ()) -> Samples:
    """``tiles.csv`` written by ``histo tiles`` (columns slide, label, path ...)."""
    rows = _read_csv(path)
    found = sorted({r["label"] for r in rows})
    names = tuple(class_names) or tuple(found)
    _check_names(found, names, path)
    index = {n: i for i, n in enumerate(names)}
    rows = [r for r in rows if r["label"] in index]
    paths = [str((path.parent / r["path"]).resolve()) for r in rows]
    return _samples(
        paths, [index[r["label"]] for r in rows], names, [r["slide"] for r in rows], [""] * len(rows)
    )


def read_labels_csv(path: Path, root: Path, class_names: Sequence[str] = ()) -> Samples:
    """A CSV with ``path`` and ``label`` (+ optional ``split``, ``md5``, ``group``), like PCam's labels.csv.

    Integer labels index ``class_names``; text labels are class names.
    """
    rows = _read_csv(path)
    raw = [r["label"] for r in rows]
    if all(v.isdigit() for v in raw):
        labels = [int(v) for v in raw]
        names = tuple(class_names) or tuple(str(i) for i in range(max(labels) + 1))
        if max(labels) >= len(names):
            raise DataError(f"{path}: label {max(labels)} but data.class_names has {len(names)} names")
    else:
        names = tuple(class_names) or tuple(sorted(set(raw)))
        _check_names(sorted(set(raw)), names, path)
        labels = [names.index(v) for v in raw]
    samples = _samples(
        [str(root / r["path"]) for r in rows],
        labels,
        names,
        [r.get("group") or Path(r["path"]).stem for r in rows],
        [r.get("split", "") for r in rows],
    )
    if rows and "md5" in rows[0]:
        samples = replace(samples, hashes=np.array([r["md5"] for r in rows]))
    return samples


def dedup(samples: Samples) -> Samples:
    """Keep the first of byte-identical patches; drop valid/test copies of training patches."""
    hashes = samples.hashes if samples.hashes is not None else _hashes(samples)
    split = samples.split if samples.split is not None else np.full(len(samples), "")
    order = sorted(range(len(samples)), key=lambda i: (split[i] not in ("train", ""), i))
    seen: set[str] = set()
    keep = []
    for i in order:
        if hashes[i] not in seen:
            seen.add(hashes[i])
            keep.append(i)
    return replace(samples, hashes=hashes).subset(np.sort(np.array(keep, dtype=np.int64)))


def _hashes(samples: Samples) -> np.ndarray:
    if samples.images is not None:
        return np.array([hashlib.md5(img.tobytes()).hexdigest() for img in samples.images])
    return np.array([hashlib.md5(_read_patch(p)).hexdigest() for p in samples.paths])


def _read_patch(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise DataError(f"{path}: patch file not found (moved or deleted since the list was made?)") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from exc


def _samples(paths, labels, names, groups, splits) -> Samples:  # type: ignore[no-untyped-def]
    return Samples(
        labels=np.asarray(labels, dtype=np.int64),
        class_names=tuple(names),
        paths=tuple(paths),
        groups=np.asarray(groups, dtype=str),
        split=np.asarray(splits, dtype=str),
    )


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        raise DataError(f"{path}: CSV not found")
    if not path.is_file():
        raise DataError(f"{path}: is a folder, not a CSV file")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: not a text file (byte {exc.start} is not UTF-8); a label list is CSV text"
        ) from exc
    except csv.Error as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if not rows:
        raise DataError(f"{path}: has no rows; it needs a header with path and label, then one row per patch")
    missing = {"path", "label"} - set(rows[0])
    if missing:
        raise DataError(f"{path}: needs columns path and label; missing {sorted(missing)}")
    blank = next((i for i, r in enumerate(rows, start=2) if not (r.get("path") or "").strip()), None)
    if blank is not None:
        raise DataError(f"{path}: line {blank} has no path; every row names its patch file")
    return rows


def _check_names(found: Sequence[str], names: Sequence[str], source: Path) -> None:
    unknown = sorted(set(found) - set(names))
    if unknown and len(unknown) == len(set(found)):
        raise DataError(
            f"{source}: none of its classes {list(found)} is in the recipe's data.class_names {list(names)}; "
            "fix data.class_names to match the annotation classes"
        )


def _check_classes(samples: Samples, source: str) -> None:
    counts = samples.counts()
    empty = [n for n, c in counts.items() if c == 0]
    if empty:
        raise DataError(
            f"class(es) {empty} have no patches in the {source} data (counts: {counts}); "
            "add patches or remove them from data.class_names"
        )
    if len(counts) < 2:
        raise DataError(f"only one class {list(counts)} in the {source} data; a classifier needs two or more")


def load_split_samples(root: str | Path, split: str, class_names: tuple[str, ...] = ()) -> Samples:
    """One split of a labelled data root (``labels.csv`` with a split column, or split/class folders).

    De-duplicated on md5 across all splits first (training copies leave the others), as training does.
    """
    root = Path(root)
    csv_path = root / "labels.csv"
    if csv_path.is_file():
        samples = read_labels_csv(csv_path, root, class_names)
    else:
        found = read_class_folders(root)
        samples = _rename_classes(found, class_names)
    samples = dedup(samples)
    names = sorted({str(s) for s in samples.split}) if samples.split is not None else []
    if split == "all":
        return samples
    if samples.split is None or split not in names:
        raise DataError(
            f"{root}: has no split {split!r} (splits: {[n for n in names if n] or 'none'}); give one of them "
            "with --split, or 'all'"
        )
    return samples.subset(np.flatnonzero(samples.split == split))


def _rename_classes(samples: Samples, class_names: tuple[str, ...]) -> Samples:
    """Folders named ``0, 1, ...`` index the model's classes; named folders must be its class names."""
    if not class_names or samples.class_names == class_names:
        return samples
    if all(n.isdigit() for n in samples.class_names):
        labels = np.array([int(samples.class_names[i]) for i in samples.labels], dtype=np.int64)
        if labels.max(initial=0) >= len(class_names):
            raise DataError(f"class folder {labels.max()} but the model has {len(class_names)} classes")
        return replace(samples, labels=labels, class_names=class_names)
    index = {n: i for i, n in enumerate(class_names)}
    unknown = sorted(set(samples.class_names) - set(index))
    if unknown:
        raise DataError(
            f"class folders {unknown} are not classes of the model {list(class_names)}; name the folders "
            "after the model's classes (or 0, 1, ...)"
        )
    labels = np.array([index[samples.class_names[i]] for i in samples.labels], dtype=np.int64)
    return replace(samples, labels=labels, class_names=class_names)
