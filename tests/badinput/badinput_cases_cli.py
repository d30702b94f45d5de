"""CLI misuse: every option of every ``histo`` command given a bad value (``cli/`` cases).

What a user should see:

* an out-of-range or malformed option: click's usage error naming the option and the
  accepted range (exit code 2), before any slide is read or torch is imported;
* an option pair given half (``--stain`` without ``--stain-ref``): a usage error with the fix;
* a device this machine lacks (``--device cuda`` without CUDA): one line, exit code 4;
* a path that is a folder, a link loop, a dangling link, a file where a folder is needed:
  one line saying which (exit 2 from click's checks, 3 from the OS);
* earlier outputs made with other settings (``histo tiles`` with another ``--tile-px``,
  ``histo predict`` with another ``--min-tissue``): refused with the fix (exit 2), the
  earlier files kept; with ``--overwrite``: done again, with a warning saying what was deleted.

Inputs are a 512 x 512 px H&E-like TIFF at 0.5 µm/px and a few-line GeoJSON, made in ``setup``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import imagecodecs
import numpy as np
import tifffile
from badinput_corpus import Case

SLIDE = "s.tif"
MODEL = "pcam-mobilenetv2"  # 96 px patches at 1 µm/px: 2 x 2 tiles on the 512 px slide
USAGE, INPUT, ENVIRONMENT = 2, 3, 4

Setup = Callable[[Path], None]


# -- inputs -------------------------------------------------------------------------------------------
def he_like(rows: int = 512, cols: int = 512) -> np.ndarray:
    """uint8 RGB: a pink tissue disc with purple nuclei on white (tissue is found)."""
    rng = np.random.default_rng(0)
    rr, cc = np.mgrid[0:rows, 0:cols]
    disc = (rr - rows / 2) ** 2 + (cc - cols / 2) ** 2 < (0.45 * min(rows, cols)) ** 2
    image = np.full((rows, cols, 3), (242, 240, 244), np.float32)
    image[disc] = (222, 140, 182)
    image[disc & (rng.random((rows, cols)) < 0.08)] = (110, 60, 150)
    return np.clip(image + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8)


def slide(d: Path) -> None:
    tifffile.imwrite(
        d / SLIDE, he_like(), metadata=None, resolution=(2e4, 2e4), resolutionunit="CENTIMETER"
    )  # 0.5 µm/px


def geojson(d: Path, x0: float = 0, size: float = 40) -> None:
    ring = [[x0, 0], [x0 + size, 0], [x0 + size, size], [x0, size], [x0, 0]]
    feature = {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {"objectType": "annotation", "classification": {"name": "Tumor", "color": [200, 0, 0]}},
    }
    (d / "a.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))


def both(*setups: Setup) -> Setup:
    def setup(d: Path) -> None:
        for step in setups:
            step(d)

    return setup


def file_at(name: str, payload: bytes = b"not a folder") -> Setup:
    def setup(d: Path) -> None:
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(payload)

    return setup


def folder_at(name: str) -> Setup:
    return lambda d: (d / name).mkdir(parents=True, exist_ok=True)


def link_loop(name: str) -> Setup:
    def setup(d: Path) -> None:
        os.symlink(f"{name}.b", d / name)
        os.symlink(name, d / f"{name}.b")

    return setup


def dangling(name: str) -> Setup:
    return lambda d: os.symlink("gone.tif", d / name)


def labels_png(d: Path) -> None:
    (d / "rgb.png").write_bytes(imagecodecs.png_encode(he_like(64, 64)))


def labels_float(d: Path) -> None:
    tifffile.imwrite(d / "float.tif", np.random.default_rng(0).random((32, 32), dtype=np.float32))


def labels_corrupt(d: Path) -> None:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.arange(64 * 64, dtype=np.uint16).reshape(64, 64), compression="zlib")
    (d / "broken.tif").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


def histo(argv: Sequence[str]) -> Setup:
    """Run ``histo ARGV`` quietly in setup (an earlier run whose outputs the case then meets)."""

    def setup(d: Path) -> None:
        from napari_histo.cli.main import main

        old = Path.cwd()
        os.chdir(d)
        sink = io.StringIO()
        try:
            with (
                contextlib.redirect_stdout(sink),
                contextlib.redirect_stderr(sink),
                warnings.catch_warnings(),
            ):
                warnings.simplefilter("ignore")
                try:
                    main(list(argv))
                except SystemExit as exc:
                    if exc.code:
                        raise RuntimeError(
                            f"setup run failed: histo {' '.join(argv)}\n{sink.getvalue()}"
                        ) from exc
        finally:
            os.chdir(old)

    return setup


def no_cuda() -> str | None:
    import torch

    return "this machine has CUDA" if torch.cuda.is_available() else None


def no_mps() -> str | None:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return "this machine has MPS" if backend is not None and backend.is_available() else None


# -- cases --------------------------------------------------------------------------------------------
TILES = ["tiles", SLIDE, "--out", "t"]
TILES_MPP = [*TILES, "--mpp", "1"]
PREDICT = ["predict", SLIDE, "--model", MODEL, "--out", "r"]
CONVERT = ["qupath", "convert", "a.geojson", "a.tif"]
MPP_WORDS = r"micrometres per pixel"
RANGE = r"expected|range|not a"


def option(name: str, argv: list[str], expect: str, setup: Setup | None = slide, **kw) -> Case:
    return Case(f"cli/{name}", argv, expect=expect, setup=setup, exit_code=kw.pop("exit_code", USAGE), **kw)


def _mpp_cases(command: str, base: list[str], flag: str) -> list[Case]:
    bad = {
        "zero": "0",
        "negative": "-1",
        "nan": "nan",
        "inf": "inf",
        "huge": "1e9",
        "tiny": "1e-5",
        "text": "abc",
    }
    return [
        option(f"{command}/{flag.strip('-')}-{what}", [*base, flag, value], rf"{flag}.*{RANGE}")
        for what, value in bad.items()
    ]


CASES: list[Case] = [
    # -- histo itself --------------------------------------------------------------------------------
    option("histo/unknown-command", ["tile", SLIDE], r"no such command 'tile'", setup=None),
    option("histo/unknown-option", ["--verbose", "info", SLIDE], r"no such option.*--verbose", setup=None),
    # -- info -------------------------------------------------------------------------------------------
    *_mpp_cases("info", ["info", SLIDE], "--mpp"),
    option("info/no-slide", ["info"], r"missing argument", setup=None),
    option(
        "info/one-of-two-missing",
        ["info", SLIDE, "nope.svs"],
        r"1 of 2 files could not be read",
        exit_code=INPUT,
    ),
    # -- tiles -------------------------------------------------------------------------------------------
    *_mpp_cases("tiles", TILES, "--mpp"),
    *_mpp_cases("tiles", TILES_MPP, "--slide-mpp"),
    option("tiles/no-mpp", TILES, r"exactly one of --mpp.*--magnification"),
    option("tiles/mpp-and-magnification", [*TILES_MPP, "--magnification", "20"], r"exactly one of"),
    option("tiles/magnification-zero", [*TILES, "--magnification", "0"], rf"--magnification.*{RANGE}"),
    option("tiles/magnification-negative", [*TILES, "--magnification", "-20"], rf"--magnification.*{RANGE}"),
    option("tiles/magnification-nan", [*TILES, "--magnification", "nan"], rf"--magnification.*{RANGE}"),
    option("tiles/min-tissue-2", [*TILES_MPP, "--min-tissue", "2"], rf"--min-tissue.*{RANGE}"),
    option("tiles/min-tissue-negative", [*TILES_MPP, "--min-tissue", "-0.1"], rf"--min-tissue.*{RANGE}"),
    option("tiles/min-tissue-nan", [*TILES_MPP, "--min-tissue", "nan"], rf"--min-tissue.*{RANGE}"),
    option("tiles/tile-px-0", [*TILES_MPP, "--tile-px", "0"], r"--tile-px.*range"),
    option("tiles/tile-px-huge", [*TILES_MPP, "--tile-px", "100000"], r"--tile-px.*range"),
    option("tiles/tile-px-text", [*TILES_MPP, "--tile-px", "big"], r"--tile-px.*not a valid integer"),
    option("tiles/overlap-negative", [*TILES_MPP, "--overlap", "-1"], r"--overlap.*range"),
    option("tiles/overlap-whole-tile", [*TILES_MPP, "--tile-px", "64", "--overlap", "64"], r"smaller than"),
    option("tiles/workers-0", [*TILES_MPP, "--workers", "0"], r"--workers.*range"),
    option("tiles/workers-negative", [*TILES_MPP, "--workers", "-4"], r"--workers.*range"),
    option("tiles/tissue-method-banana", [*TILES_MPP, "--tissue-method", "banana"], r"--tissue-method"),
    option("tiles/label-mode-banana", [*TILES_MPP, "--label-mode", "banana"], r"--label-mode"),
    option("tiles/format-tiff", [*TILES_MPP, "--format", "tiff"], r"--format"),
    option("tiles/out-is-a-file", TILES_MPP, r"--out.*is a file", setup=both(slide, file_at("t"))),
    option(
        "tiles/out-below-a-file",
        ["tiles", SLIDE, "--mpp", "1", "--out", "f/t"],
        r"f/t.*a part of this path is a file",
        setup=both(slide, file_at("f")),
        exit_code=INPUT,
    ),
    option("tiles/slide-missing", TILES_MPP, r"does not exist", setup=None, exit_code=INPUT),
    option("tiles/slide-is-a-folder", TILES_MPP, r"is a directory", setup=folder_at(SLIDE), exit_code=INPUT),
    option(
        "tiles/slide-link-loop",
        TILES_MPP,
        r"s\.tif: is a symbolic link that loops",
        setup=link_loop(SLIDE),
        exit_code=INPUT,
    ),
    option(
        "tiles/slide-dangling-link",
        TILES_MPP,
        r"s\.tif: is a symbolic link to 'gone\.tif', which does not exist",
        setup=dangling(SLIDE),
        exit_code=INPUT,
    ),
    option(
        "tiles/annotations-missing",
        [*TILES_MPP, "--annotations", "a.geojson"],
        r"--annotations.*does not exist",
        exit_code=INPUT,
    ),
    option(
        "tiles/other-tile-px-into-same-folder",
        [*TILES_MPP, "--tile-px", "64"],
        r"already holds \d+ patches of s\.tif cut with other settings \(.*--tile-px 96 -> 64\).*--overwrite",
        setup=both(slide, histo([*TILES_MPP, "--tile-px", "96", "--min-tissue", "0"])),
        keep=("t/s_tiles.settings.json", "t/tissue/s_x0_y0.png", "t/tiles.csv"),
    ),
    option(
        "tiles/other-format-into-same-folder",
        [*TILES_MPP, "--tile-px", "96", "--min-tissue", "0", "--format", "jpg"],
        r"other settings \(--format png -> jpg\)",
        setup=both(slide, histo([*TILES_MPP, "--tile-px", "96", "--min-tissue", "0"])),
        keep=("t/tissue/s_x0_y0.png",),
    ),
    option(
        "tiles/other-min-tissue-into-same-folder",
        [*TILES_MPP, "--tile-px", "96", "--min-tissue", "0.9"],
        r"other settings \(--min-tissue 0\.0 -> 0\.9\)",
        setup=both(slide, histo([*TILES_MPP, "--tile-px", "96", "--min-tissue", "0"])),
        keep=("t/tissue/s_x0_y0.png",),
    ),
    option(
        "tiles/other-slide-mpp-into-same-folder",
        [*TILES_MPP, "--tile-px", "96", "--min-tissue", "0", "--slide-mpp", "0.25"],
        r"other settings \(slide µm/px \(--slide-mpp\) 0\.5 -> 0\.25\)",
        setup=both(slide, histo([*TILES_MPP, "--tile-px", "96", "--min-tissue", "0"])),
        keep=("t/tissue/s_x0_y0.png",),
    ),
    option(
        "tiles/older-folder-without-settings",
        [*TILES_MPP, "--tile-px", "64"],
        r"already holds 1 patches .*--tile-px 224 -> 64",
        setup=both(
            slide,
            file_at("t/tissue/s_x0_y0.png", b"an old patch"),
            file_at(
                "t/tiles.csv",
                b"slide,x,y,level,mpp,tile_px,label,tissue_fraction,path\n"
                b"s.tif,0,0,0,1.0,224,tissue,1.0,tissue/s_x0_y0.png\n",
            ),
        ),
        keep=("t/tissue/s_x0_y0.png", "t/tiles.csv"),
    ),
    option(
        "tiles/other-tile-px-with-overwrite",
        [*TILES_MPP, "--tile-px", "64", "--overwrite"],
        r"--overwrite: deleted \d+ earlier patches of s\.tif .*--tile-px 96 -> 64",
        setup=both(slide, histo([*TILES_MPP, "--tile-px", "96", "--min-tissue", "0"])),
        kind="handled",
        exit_code=None,
    ),
    option(
        "tiles/mpp-finer-than-the-slide",
        [*TILES, "--mpp", "0.1", "--tile-px", "512", "--min-tissue", "0.99"],
        r"--mpp 0\.1 is 5 times finer than the slide's 0\.5 µm/px",
        kind="handled",
        exit_code=None,
    ),
    # -- predict -----------------------------------------------------------------------------------------
    *_mpp_cases("predict", PREDICT, "--slide-mpp"),
    option("predict/min-tissue-2", [*PREDICT, "--min-tissue", "2"], rf"--min-tissue.*{RANGE}"),
    option("predict/min-tissue-nan", [*PREDICT, "--min-tissue", "nan"], rf"--min-tissue.*{RANGE}"),
    option("predict/min-tissue-text", [*PREDICT, "--min-tissue", "half"], rf"--min-tissue.*{RANGE}"),
    option("predict/batch-size-0", [*PREDICT, "--batch-size", "0"], r"--batch-size.*range"),
    option("predict/batch-size-negative", [*PREDICT, "--batch-size", "-8"], r"--batch-size.*range"),
    option("predict/batch-size-huge", [*PREDICT, "--batch-size", "1000000000"], r"--batch-size.*range"),
    option("predict/workers-0", [*PREDICT, "--workers", "0"], r"--workers.*range"),
    option("predict/workers-negative", [*PREDICT, "--workers", "-1"], r"--workers.*range"),
    option("predict/device-banana", [*PREDICT, "--device", "banana"], r"--device.*'banana' is not a device"),
    option("predict/device-cuda-colon", [*PREDICT, "--device", "cuda:"], r"--device.*not a device"),
    option(
        "predict/device-cuda-without-cuda",
        [*PREDICT, "--device", "cuda"],
        r"--device cuda: CUDA is not available here.*--device cpu",
        exit_code=ENVIRONMENT,
        skip_if=no_cuda,
    ),
    option(
        "predict/device-cuda-7-without-cuda",
        [*PREDICT, "--device", "cuda:7"],
        r"--device cuda:7: CUDA is not available here",
        exit_code=ENVIRONMENT,
        skip_if=no_cuda,
    ),
    option(
        "predict/device-cuda-99",
        [*PREDICT, "--device", "cuda:99"],
        r"--device cuda:99: (CUDA is not available here|this machine has \d+ CUDA device\(s\))",
        exit_code=ENVIRONMENT,
    ),
    option(
        "predict/device-mps-without-mps",
        [*PREDICT, "--device", "mps"],
        r"--device mps: .*not available.*--device cpu",
        exit_code=ENVIRONMENT,
        skip_if=no_mps,
    ),
    option("predict/stain-without-reference", [*PREDICT, "--stain", "macenko"], r"--stain needs --stain-ref"),
    option(
        "predict/reference-without-stain",
        [*PREDICT, "--stain-ref", SLIDE],
        r"--stain-ref needs --stain.*macenko",
    ),
    option("predict/stain-banana", [*PREDICT, "--stain", "banana"], r"--stain"),
    option(
        "predict/stain-reference-missing",
        [*PREDICT, "--stain", "macenko", "--stain-ref", "ref.png"],
        r"--stain-ref.*does not exist",
        exit_code=INPUT,
    ),
    option("predict/shard-text", [*PREDICT, "--shard", "half"], r"--shard.*expected i/n"),
    option("predict/shard-beyond", [*PREDICT, "--shard", "3/2"], r"--shard.*0 <= i < n"),
    option("predict/shard-of-zero", [*PREDICT, "--shard", "0/0"], r"--shard.*0 <= i < n"),
    option(
        "predict/model-missing",
        ["predict", SLIDE, "--model", "nope", "--out", "r"],
        r"nope.*not a model",
        exit_code=INPUT,
    ),
    option("predict/no-model", ["predict", SLIDE, "--out", "r"], r"missing option '--model'"),
    option("predict/out-is-a-file", PREDICT, r"--out.*is a file", setup=both(slide, file_at("r"))),
    option("predict/slide-missing", PREDICT, r"does not exist", setup=None, exit_code=INPUT),
    option(
        "predict/slide-link-loop",
        PREDICT,
        r"s\.tif: is a symbolic link that loops",
        setup=link_loop(SLIDE),
        exit_code=INPUT,
    ),
    option(
        "predict/other-min-tissue-into-same-folder",
        [*PREDICT, "--min-tissue", "0.3"],
        r"s\.summary\.json was made with other settings \(--min-tissue 0\.5 -> 0\.3\).*--overwrite",
        setup=both(slide, histo(PREDICT)),
        keep=("r/s.summary.json", "r/s.geojson", "r/s.overlay.png"),
    ),
    option(
        "predict/other-min-tissue-with-overwrite",
        [*PREDICT, "--min-tissue", "0.3", "--overwrite"],
        r"--overwrite: replacing the outputs of s\.tif .*--min-tissue 0\.5 -> 0\.3",
        setup=both(slide, histo(PREDICT)),
        kind="handled",
        exit_code=None,
    ),
    option(
        "predict/interrupted-under-other-settings",
        PREDICT,
        r"s\.tif: the interrupted run in r used other settings \(--min-tissue 0\.9 -> 0\.5\); "
        r"starting afresh",
        setup=both(
            slide,
            file_at("r/s.settings.json", json.dumps({"min_tissue": 0.9}).encode()),
            file_at("r/s.zarr.partial/zarr.json", b"{}"),
        ),
        kind="handled",
        exit_code=None,
    ),
    option(
        "predict/compile-without-cuda",
        [*PREDICT, "--compile"],
        r"--compile speeds up CUDA only",
        kind="handled",
        exit_code=None,
        skip_if=no_cuda,
    ),
    # -- qupath convert / validate ----------------------------------------------------------------------
    option(
        "qupath/downsample-zero", [*CONVERT, "--downsample", "0"], rf"--downsample.*{RANGE}", setup=geojson
    ),
    option(
        "qupath/downsample-negative",
        [*CONVERT, "--downsample", "-4"],
        rf"--downsample.*{RANGE}",
        setup=geojson,
    ),
    option(
        "qupath/downsample-nan", [*CONVERT, "--downsample", "nan"], rf"--downsample.*{RANGE}", setup=geojson
    ),
    option(
        "qupath/downsample-inf", [*CONVERT, "--downsample", "inf"], rf"--downsample.*{RANGE}", setup=geojson
    ),
    option("qupath/shape-zero", [*CONVERT, "--shape", "0x0"], r"--shape.*at least 1", setup=geojson),
    option(
        "qupath/shape-negative", [*CONVERT, "--shape", "-5x5"], r"--shape.*expected ROWSxCOLS", setup=geojson
    ),
    option("qupath/shape-text", [*CONVERT, "--shape", "big"], r"--shape.*expected ROWSxCOLS", setup=geojson),
    option(
        "qupath/shape-beyond-memory",
        [*CONVERT, "--shape", "100000x100000"],
        r"100,000 x 100,000 px label image needs 9\.3 GiB.*--shape",
        setup=geojson,
        exit_code=ENVIRONMENT,
        env={"NAPARI_HISTO_MEMORY_BUDGET": "1G"},
    ),
    option(
        "qupath/shape-a-million-squared",
        [*CONVERT, "--shape", "1000000x1000000"],
        r"label image needs 931 GiB.*a larger --downsample",
        setup=geojson,
        exit_code=ENVIRONMENT,
    ),
    option(
        "qupath/level-negative",
        [*CONVERT, "--slide", SLIDE, "--level", "-1"],
        r"--level.*range",
        setup=both(slide, geojson),
    ),
    option(
        "qupath/level-too-high",
        [*CONVERT, "--slide", SLIDE, "--level", "5"],
        r"has levels 0\.\.0, got 5",
        setup=both(slide, geojson),
    ),
    option("qupath/level-without-slide", [*CONVERT, "--level", "2"], r"--level needs --slide", setup=geojson),
    option(
        "qupath/slide-and-downsample",
        [*CONVERT, "--slide", SLIDE, "--downsample", "4"],
        r"either --slide/--level or --downsample/--shape",
        setup=both(slide, geojson),
    ),
    option("qupath/mode-banana", [*CONVERT, "--mode", "banana"], r"--mode", setup=geojson),
    option(
        "qupath/object-type-banana",
        ["qupath", "convert", "l.tif", "o.geojson", "--object-type", "banana"],
        r"--object-type",
        setup=None,
    ),
    option("qupath/layout-future", [*CONVERT, "--layout", "0.9"], r"--layout", setup=geojson),
    option("qupath/only-banana", [*CONVERT, "--only", "banana"], r"--only.*unknown type", setup=geojson),
    option(
        "qupath/classes-empty-name",
        [*CONVERT, "--classes", "Tumor,,Stroma"],
        r"--classes.*empty class name",
        setup=geojson,
    ),
    option(
        "qupath/classes-twice",
        [*CONVERT, "--classes", "Tumor,Tumor"],
        r"--classes.*Tumor named twice",
        setup=geojson,
    ),
    option(
        "qupath/direction-unknown",
        ["qupath", "convert", "a.geojson", "a.txt"],
        r"cannot tell the direction",
        setup=geojson,
    ),
    option("qupath/source-missing", CONVERT, r"does not exist", setup=None, exit_code=INPUT),
    option(
        "qupath/destination-is-a-folder", CONVERT, r"is a directory", setup=both(geojson, folder_at("a.tif"))
    ),
    option(
        "qupath/destination-below-a-file",
        ["qupath", "convert", "a.geojson", "f/a.tif"],
        r"f/a\.tif.*a part of this path is a file",
        setup=both(geojson, file_at("f")),
        exit_code=INPUT,
    ),
    option(
        "qupath/labels-are-rgb",
        ["qupath", "convert", "rgb.png", "o.geojson"],
        r"rgb\.png has shape \(64, 64, 3\).*one 2-D integer plane",
        setup=labels_png,
        exit_code=INPUT,
    ),
    option(
        "qupath/labels-are-float",
        ["qupath", "convert", "float.tif", "o.geojson"],
        r"float",
        setup=labels_float,
        exit_code=INPUT,
    ),
    option(
        "qupath/labels-truncated",
        ["qupath", "convert", "broken.tif", "o.geojson"],
        r"broken\.tif cannot be read as a label image",
        setup=labels_corrupt,
        exit_code=INPUT,
    ),
    option(
        "qupath/labels-shape-given",
        ["qupath", "convert", "rgb.png", "o.geojson", "--shape", "10x10"],
        r"--shape.*drop --shape",
        setup=labels_png,
    ),
    option("qupath/validate-nothing", ["qupath", "validate"], r"missing argument", setup=None),
    # -- demo, export-wsinfer -------------------------------------------------------------------------
    option(
        "demo/device-banana",
        ["demo", "--device", "banana", "--headless"],
        r"--device.*not a device",
        setup=None,
    ),
    option(
        "demo/model-missing",
        ["demo", "--model", "nope", "--headless"],
        r"nope.*not a model",
        setup=None,
        exit_code=INPUT,
    ),
    option(
        "demo/out-is-a-file", ["demo", "--out", "d", "--headless"], r"--out.*is a file", setup=file_at("d")
    ),
    option(
        "demo/slide-missing",
        ["demo", "--slide", "nope.svs", "--headless"],
        r"--slide.*does not exist",
        setup=None,
        exit_code=INPUT,
    ),
    option("demo/sample-banana", ["demo", "--sample", "banana", "--headless"], r"--sample", setup=None),
    option(
        "export/model-missing",
        ["export-wsinfer", "nope", "w"],
        r"nope.*not a model",
        setup=None,
        exit_code=INPUT,
    ),
    option("export/out-is-a-file", ["export-wsinfer", MODEL, "w"], r"is a file", setup=file_at("w")),
    option("export/no-out", ["export-wsinfer", MODEL], r"missing argument", setup=None),
]
