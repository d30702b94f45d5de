"""``histo qupath``: QuPath GeoJSON ⇄ label images, and checking files before QuPath sees them."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from napari_histo.cli._options import DOWNSAMPLE, LEVEL, SHAPE, ExistingFile
from napari_histo.cli._report import naming_folder
from napari_histo.core.memory import check_allocation
from napari_histo.errors import InvalidImageError, InvalidParameterError
from qupath_bridge import (
    LabelMode,
    ObjectType,
    PathObject,
    labels_to_objects,
    objects_to_labels,
    read_geojson,
    validate_geojson,
    write_geojson,
)

__all__ = ["convert", "qupath", "validate"]

GEOJSON_SUFFIXES = (".geojson", ".json", ".gz", ".zip")
IMAGE_SUFFIXES = (".tif", ".tiff", ".png")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def qupath() -> None:
    """Move objects between napari-histo and QuPath (GeoJSON, QuPath 0.2–0.7).

    \b
    Examples:
      histo qupath convert cells.geojson cells.tif --slide slide.svs --level 2
      histo qupath convert labels.tif cells.geojson --downsample 4
      histo qupath validate export.geojson

    In QuPath: File › Objects data › Import objects (or drag & drop) reads the
    GeoJSON written here; qupath_bridge/scripts/*.groovy automate both ways.
    """


@qupath.command()
@click.argument("src", type=ExistingFile())
@click.argument("dst", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--slide",
    type=ExistingFile(),
    help="Slide the objects belong to: gives the size and downsample of --level.",
)
@click.option(
    "--level",
    type=LEVEL,
    default=0,
    show_default=True,
    help="Pyramid level of the label image (with --slide).",
)
@click.option(
    "--downsample",
    type=DOWNSAMPLE,
    default=None,
    help="Level-0 pixels per label pixel, without --slide (default 1).",
)
@click.option(
    "--shape",
    "shape",
    type=SHAPE,
    default=None,
    metavar="ROWSxCOLS",
    help="Label image size without --slide (default: just fits the objects).",
)
@click.option(
    "--mode",
    type=click.Choice([m.value for m in LabelMode]),
    default="instance",
    show_default=True,
    help="instance: one label per object; class: one label per class.",
)
@click.option(
    "--classes",
    default=None,
    metavar="A,B,...",
    help="Class of label 1, 2, ... (class mode, and naming traced labels).",
)
@click.option(
    "--object-type",
    type=click.Choice([t.value for t in ObjectType if t is not ObjectType.ROOT]),
    default="detection",
    show_default=True,
    help="QuPath type of traced objects.",
)
@click.option(
    "--only",
    "only_types",
    default=None,
    metavar="TYPE,...",
    help="GeoJSON -> labels: draw only these object types (e.g. annotation, or detection,cell).",
)
@click.option(
    "--layout",
    type=click.Choice(["0.4", "0.3"]),
    default="0.4",
    show_default=True,
    help="GeoJSON layout: 0.4 for QuPath 0.4–0.7, 0.3 for QuPath 0.3.",
)
def convert(
    src: Path,
    dst: Path,
    slide: Path | None,
    level: int,
    downsample: float | None,
    shape: tuple[int, int] | None,
    mode: str,
    classes: str | None,
    object_type: str,
    only_types: str | None,
    layout: str,
) -> None:
    """Convert QuPath GeoJSON to a label image, or a label image to QuPath GeoJSON.

    \b
    The direction follows the file names:
      GeoJSON (.geojson .json .gz .zip)  ->  label image (.tif .tiff .png)
      label image                        ->  GeoJSON (one object per label, holes kept,
                                             as QuPath's ContourTracing.labelsToDetections)
    Coordinates in GeoJSON are always level-0 pixels; --slide/--level or --downsample
    say which pyramid level the label image is at.

    \b
    Examples:
      histo qupath convert annotations.geojson mask.tif --slide slide.svs --level 2 --mode class
      histo qupath convert export.geojson tumour.tif --downsample 8 --only annotation
      histo qupath convert cells.geojson cells.png --downsample 4 --shape 2048x2048
      histo qupath convert nuclei.tif nuclei.geojson --slide slide.svs --level 1
      histo qupath convert tissue.png tissue.geojson --downsample 32 --object-type annotation \\
          --classes Tissue
    """
    class_names = _class_names(classes)
    ds, shape = _level_geometry(slide, level, downsample, shape)
    if src.name.lower().endswith(GEOJSON_SUFFIXES) and dst.suffix.lower() in IMAGE_SUFFIXES:
        objects = _only(read_geojson(src), only_types)
        if shape is None:
            shape = _fitting_shape(objects, ds)
        _check_label_memory(shape, len(class_names) if mode == "class" and class_names else len(objects))
        labels = objects_to_labels(objects, shape, downsample=ds, mode=mode, class_names=class_names,
                                   outside="check")  # fmt: skip
        with naming_folder(dst.parent):
            _write_labels(dst, labels)
        click.echo(
            f"wrote {dst}: {labels.shape[0]:,} x {labels.shape[1]:,} {labels.dtype}, "
            f"{len(objects):,} objects, downsample {ds:g}, {mode} labels"
        )
        if mode == "class":
            names = class_names or sorted({o.class_name for o in objects if o.class_name is not None})
            click.echo("  " + ", ".join(f"{k + 1} = {name}" for k, name in enumerate(names)))
    elif src.suffix.lower() in IMAGE_SUFFIXES and dst.name.lower().endswith(GEOJSON_SUFFIXES):
        if shape is not None and slide is None:
            raise click.BadParameter("a label image has its own size; drop --shape", param_hint="--shape")
        labels = _read_labels(src)
        objects = labels_to_objects(labels, downsample=ds, object_type=object_type, class_names=class_names)
        with naming_folder(dst.parent):
            write_geojson(objects, dst, layout=layout)
        click.echo(f"wrote {dst}: {len(objects):,} {object_type} objects traced at downsample {ds:g}")
    else:
        raise click.UsageError(
            f"cannot tell the direction from {src.name} -> {dst.name}: one must be GeoJSON "
            f"({', '.join(GEOJSON_SUFFIXES)}), the other a label image ({', '.join(IMAGE_SUFFIXES)})"
        )


@qupath.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON record per file, as a list.")
@click.option("--all", "show_info", is_flag=True, help="Also list notes that QuPath does not mind.")
def validate(files: tuple[Path, ...], as_json: bool, show_info: bool) -> None:
    """Report what QuPath 0.4–0.7 would reject in GeoJSON files, and why.

    \b
    Errors (exit code 1): invalid JSON, unknown geometry types, open or too-short
    polygon rings, a classification without colour, bare NaN values, impossible
    coordinates.  Warnings (exit code 0): self-intersecting polygons, 3-D
    coordinates, case-mismatched objectType, non-UUID ids, plain GeoJSON.
    Examples:
      histo qupath validate export.geojson
      histo qupath validate results/*.geojson --json > report.json
    """
    results = [validate_geojson(path) for path in files]
    if as_json:
        records = [
            {
                "file": r.source,
                "valid": r.is_valid,
                "fatal": r.fatal,
                "features": r.report.n_features if r.report else 0,
                "issues": [
                    {"feature": i.index, "code": i.code, "severity": i.severity.value, "message": i.message}
                    for i in r.issues
                ],
            }
            for r in results
        ]
        click.echo(json.dumps(records, indent=2, ensure_ascii=False))
    else:
        click.echo("\n".join(r.format(show_info=show_info) for r in results))
    if not all(r.is_valid for r in results):
        raise SystemExit(1)


def _class_names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [c.strip() for c in text.split(",")]
    if not all(names):
        raise click.BadParameter(
            f"{text!r} has an empty class name; give names separated by commas, e.g. Tumor,Stroma",
            param_hint="--classes",
        )
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise click.BadParameter(f"{', '.join(twice)} named twice in {text!r}", param_hint="--classes")
    return names


def _level_geometry(
    slide: Path | None, level: int, downsample: float | None, shape: tuple[int, int] | None
) -> tuple[float, tuple[int, int] | None]:
    if slide is None:
        if level != 0:
            raise click.BadParameter(
                "--level needs --slide (or give --downsample and --shape)", param_hint="--level"
            )
        return (1.0 if downsample is None else downsample), shape
    if downsample is not None or shape is not None:
        raise click.BadParameter("give either --slide/--level or --downsample/--shape, not both")
    from napari_histo.io import open_slide

    with open_slide(slide) as opened:
        if not 0 <= level < opened.level_count:
            raise click.BadParameter(
                f"{slide.name} has levels 0..{opened.level_count - 1}, got {level}", param_hint="--level"
            )
        rows, cols = opened.level_info[level].shape[:2]
        return float(opened.level_downsamples[level]), (int(rows), int(cols))


def _check_label_memory(shape: tuple[int, int], labels: int) -> None:
    dtype = np.uint8 if labels < 2**8 else np.uint16 if labels < 2**16 else np.uint32
    check_allocation(
        shape,
        dtype,
        f"a {shape[0]:,} x {shape[1]:,} px label image",
        "use a coarser --level (with --slide), a larger --downsample, or a smaller --shape",
    )


def _only(objects: list[PathObject], only_types: str | None) -> list[PathObject]:
    if not only_types:
        return objects
    wanted = {t.strip() for t in only_types.split(",")}
    known = {t.value for t in ObjectType}
    if not wanted <= known:
        raise click.BadParameter(
            f"unknown type(s) {sorted(wanted - known)}; use {sorted(known)}", param_hint="--only"
        )
    return [o for o in objects if o.object_type.value in wanted]


def _fitting_shape(objects: list[PathObject], downsample: float) -> tuple[int, int]:
    if not objects:
        return (1, 1)
    import shapely

    _, _, maxx, maxy = shapely.total_bounds([o.geometry for o in objects])
    return max(1, int(np.ceil(maxy / downsample))), max(1, int(np.ceil(maxx / downsample)))


def _write_labels(path: Path, labels: np.ndarray) -> None:
    if path.suffix.lower() == ".png":
        if labels.dtype.itemsize > 2:
            raise InvalidParameterError(
                f"{labels.max():,} labels do not fit a PNG (8 or 16 bit): write a .tif instead of {path.name}"
            )
        import imagecodecs

        payload = bytes(imagecodecs.png_encode(labels))
    else:
        import io

        import tifffile

        buffer = io.BytesIO()
        tifffile.imwrite(
            buffer, labels, compression="zlib", tile=(256, 256) if min(labels.shape) >= 256 else None
        )
        payload = buffer.getvalue()
    from napari_histo.io.files import write_bytes_atomic

    write_bytes_atomic(path, payload)  # nothing half-written under DST on a full disk


def _read_labels(path: Path) -> np.ndarray:
    try:
        if path.suffix.lower() == ".png":
            import imagecodecs

            labels = np.asarray(imagecodecs.png_decode(path.read_bytes()))
        else:
            import tifffile

            labels = np.asarray(tifffile.imread(path))
    except (OSError, MemoryError):
        raise
    except Exception as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise InvalidImageError(
            f"{path.name} cannot be read as a label image ({detail}); give a PNG or TIFF with one "
            "integer plane (0 = background, 1, 2 ... = objects)"
        ) from exc
    if labels.ndim != 2:
        raise InvalidImageError(
            f"{path.name} has shape {labels.shape}; a label image is one 2-D integer plane "
            "(0 = background, 1, 2 ... = objects), not an RGB picture or a stack"
        )
    if labels.dtype.kind in "ui" and labels.size:
        top = int(labels.max())
        check_allocation(
            top, np.intp, f"tracing labels numbered up to {top:,} in {path.name}",
            "renumber the labels 1, 2, 3 ... (e.g. skimage.segmentation.relabel_sequential)",
        )  # fmt: skip
    return labels
