"""Bad slides: claimed sizes, pixel layouts, no tissue, truncation, odd paths (``slides/`` cases).

Every input is made in ``setup`` from a few hundred pixels (tifffile, imagecodecs),
then damaged byte by byte where needed; the real slides in ``../shared/data`` are
used only when present.  What a user should see:

* sizes the file cannot hold, or that do not fit in memory: one ``error:`` line
  that names the size and the fix, before anything large is allocated;
* pixel layouts: RGBA, 16-bit, grayscale convert to RGB with one ``warning:``;
  float, CMYK, palette, 1-bit, 2- and 5-channel, signed, planar are refused,
  the same way by ``info``, ``tiles`` and ``predict``;
* no tissue and tiles bigger than the slide: the right error for each;
* truncation and damage: an error (``info``, ``tiles``), a warning naming what
  was filled (``predict`` reads around damage);
* odd paths (links, folders, pipes): what the path is, never "no such file" for a link loop.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path

import imagecodecs
import numpy as np
import tifffile
from badinput_corpus import Case

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
BUILTIN_MODEL = (
    Path(__file__).resolve().parents[2] / "napari_histo" / "models" / "builtin" / "pcam-mobilenetv2"
)
MODEL = "pcam-mobilenetv2"  # 96 px patches at 1 µm/px: 192 level-0 px on these 0.5 µm/px slides
HALF_UM = {"resolution": (2e4, 2e4), "resolutionunit": "CENTIMETER"}  # 0.5 µm/px

Setup = Callable[[Path], None]


# -- pixels -------------------------------------------------------------------------------------
def he_like(rows: int = 512, cols: int = 512, seed: int = 0) -> np.ndarray:
    """uint8 RGB: a pink tissue disc with purple nuclei on a white background (tissue is found)."""
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[0:rows, 0:cols]
    disc = (rr - rows / 2) ** 2 + (cc - cols / 2) ** 2 < (0.42 * min(rows, cols)) ** 2
    image = np.empty((rows, cols, 3), np.float32)
    image[:] = (242, 240, 244)
    image[disc] = (222, 140, 182)
    nuclei = disc & (rng.random((rows, cols)) < 0.08)
    image[nuclei] = (110, 60, 150)
    image += rng.normal(0, 3, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _tif(name: str, data: Callable[[], np.ndarray], **kwargs) -> Setup:
    def setup(d: Path) -> None:
        tifffile.imwrite(d / name, data(), metadata=None, **{**HALF_UM, **kwargs})

    return setup


def _png(name: str, data: Callable[[], np.ndarray]) -> Setup:
    return lambda d: (d / name).write_bytes(imagecodecs.png_encode(data()))


def _chain(*steps: Setup) -> Setup:
    def setup(d: Path) -> None:
        for step in steps:
            step(d)

    return setup


RGB = _tif("s.tif", he_like, tile=(256, 256), compression="jpeg", photometric="rgb")


def _rgba() -> np.ndarray:
    rgb = he_like()
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:, :64] = 0  # a transparent band: white once composited
    return np.dstack([rgb, alpha])


def _gray() -> np.ndarray:
    return np.ascontiguousarray(he_like()[..., 1])


# -- byte surgery -------------------------------------------------------------------------------
def _set_tag(path: Path, name: str, value: int, page: int = 0) -> None:
    """Overwrite an inline SHORT/LONG tag value of ``page`` in place."""
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[page].tags[name]
        fmt = {3: "<H", 4: "<I", 16: "<Q"}[int(tag.dtype)]
        offset = tag.valueoffset
    data = bytearray(path.read_bytes())
    struct.pack_into(fmt, data, offset, value)
    path.write_bytes(bytes(data))


def _huge_header(kind: str) -> Setup:
    """A small slide whose header claims 1,000,000 x 1,000,000 px."""

    def setup(d: Path) -> None:
        path = d / "huge.tif"
        if kind == "tiled":
            tifffile.imwrite(
                path, he_like(), tile=(256, 256), compression="jpeg", photometric="rgb", **HALF_UM
            )
        elif kind == "strips":
            tifffile.imwrite(
                path, he_like(), rowsperstrip=64, compression="zlib", photometric="rgb", **HALF_UM
            )
        else:  # one strip for the whole image: the strip table matches, the bytes cannot
            tifffile.imwrite(
                path, he_like(), rowsperstrip=512, compression="zlib", photometric="rgb", **HALF_UM
            )
        for name in ("ImageWidth", "ImageLength"):
            _set_tag(path, name, 1_000_000)
        if kind == "one-strip":
            _set_tag(path, "RowsPerStrip", 1_000_000)

    return setup


def _uncompressed_short() -> Setup:
    def setup(d: Path) -> None:
        path = d / "short.tif"
        tifffile.imwrite(path, he_like(), rowsperstrip=128, photometric="rgb", **HALF_UM)
        with tifffile.TiffFile(path) as tif:
            tag = tif.pages[0].tags["StripByteCounts"]
            offset, count = tag.valueoffset, tag.count
        data = bytearray(path.read_bytes())
        for i in range(count):  # every strip "holds" 100 bytes instead of 196,608
            struct.pack_into("<I", data, offset + 4 * i, 100)
        path.write_bytes(bytes(data))

    return setup


def _png_claiming(width: int, height: int, name: str = "huge.png") -> Setup:
    def setup(d: Path) -> None:
        data = bytearray(imagecodecs.png_encode(he_like(64, 64)))
        struct.pack_into(">II", data, 16, width, height)
        (d / name).write_bytes(bytes(data))

    return setup


def _jpeg_claiming(width: int, height: int) -> Setup:
    def setup(d: Path) -> None:
        data = bytearray(imagecodecs.jpeg8_encode(he_like(64, 64)))
        sof = data.find(b"\xff\xc0")
        struct.pack_into(">HH", data, sof + 5, height, width)
        (d / "huge.jpg").write_bytes(bytes(data))

    return setup


def _truncate(source: str, target: str, keep: float) -> Setup:
    def setup(d: Path) -> None:
        data = (d / source).read_bytes()
        (d / target).write_bytes(data[: int(len(data) * keep)])

    return setup


def _tiles_past_end(d: Path) -> None:
    """An SVS-like file whose level-0 tiles are cut off but whose IFDs (written first) survive."""
    path = d / "full.tif"
    tifffile.imwrite(
        path, he_like(1024, 1024), tile=(256, 256), compression="jpeg", photometric="rgb", **HALF_UM
    )
    with tifffile.TiffFile(path) as tif:
        cut = int(tif.pages[0].dataoffsets[10]) + 5  # tiles 10-15 lie (partly) past the end
    (d / "cut.tif").write_bytes(path.read_bytes()[:cut])
    path.unlink()


def _pages_cut_off(d: Path) -> None:
    """A two-level slide cut just before the second page's directory: level 0 is whole, level 1 is lost."""
    path = d / "full.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(he_like(), tile=(256, 256), compression="jpeg", photometric="rgb", **HALF_UM)
        tif.write(he_like(256, 256), tile=(256, 256), compression="jpeg", photometric="rgb", subfiletype=1)
    with tifffile.TiffFile(path) as tif:
        cut = tif.pages[1].offset
    (d / "cut.tif").write_bytes(path.read_bytes()[:cut])
    path.unlink()


def _corrupt_tile(d: Path) -> None:
    path = d / "bad.tif"
    tifffile.imwrite(path, he_like(), tile=(256, 256), compression="jpeg", photometric="rgb", **HALF_UM)
    with tifffile.TiffFile(path) as tif:
        start, count = tif.pages[0].dataoffsets[3], tif.pages[0].databytecounts[3]
    data = bytearray(path.read_bytes())
    data[start : start + count] = b"\x00" * count
    path.write_bytes(bytes(data))


def _zero_width(d: Path) -> None:
    RGB(d)
    _set_tag(d / "s.tif", "ImageWidth", 0)


def _circular_ifd(d: Path) -> None:
    """Two pages whose second 'next IFD' pointer leads back to the first."""
    path = d / "loop.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(he_like(), tile=(256, 256), compression="jpeg", photometric="rgb", **HALF_UM)
        tif.write(he_like(128, 128), photometric="rgb", subfiletype=1)
    with tifffile.TiffFile(path) as tif:
        second = tif.pages[1].offset
        entries = len(tif.pages[1].tags)
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, second + 2 + 12 * entries, 8)  # next IFD -> the first page
    path.write_bytes(bytes(data))


def _garbage_after_magic(d: Path) -> None:
    rng = np.random.default_rng(1)
    (d / "junk.tif").write_bytes(b"II*\x00" + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())


def _sparse(d: Path) -> None:
    """A valid tiled slide whose every tile is left out (zero bytes): all background."""
    RGB(d)
    path = d / "s.tif"
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[0].tags["TileByteCounts"]
        offset, count = tag.valueoffset, tag.count
    data = bytearray(path.read_bytes())
    for i in range(count):
        struct.pack_into("<I", data, offset + 4 * i, 0)
    path.write_bytes(bytes(data))


def _cmyk_jpeg(d: Path) -> None:
    rgb = he_like(64, 64).astype(np.float32) / 255
    k = 1 - rgb.max(-1, keepdims=True)
    cmy = (1 - rgb - k) / np.maximum(1 - k, 1e-6)
    cmyk = np.clip(np.rint(np.concatenate([cmy, k], -1) * 255), 0, 255).astype(np.uint8)
    (d / "cmyk.jpg").write_bytes(imagecodecs.jpeg8_encode(cmyk, colorspace="CMYK", outcolorspace="CMYK"))


def _big_model(d: Path) -> None:
    """A copy of the built-in model whose patch is 100,000 px (its weights linked, not copied)."""
    import json

    folder = d / "bigpatch"
    folder.mkdir()
    spec = json.loads((BUILTIN_MODEL / "model.json").read_text())
    spec["patch_size_pixels"] = 100_000
    (folder / "model.json").write_text(json.dumps(spec))
    os.symlink(BUILTIN_MODEL / "weights.safetensors", folder / "weights.safetensors")


def _fifo(d: Path) -> None:
    os.mkfifo(d / "pipe.svs")


def _link_loop(d: Path) -> None:
    os.symlink(d / "b.svs", d / "a.svs")
    os.symlink(d / "a.svs", d / "b.svs")


def _unreadable(d: Path) -> None:
    RGB(d)
    os.chmod(d / "s.tif", 0)


def _budget(size: str) -> dict[str, str]:
    return {"NAPARI_HISTO_MEMORY_BUDGET": size}


def tiles(slide: str, *extra: str) -> list[str]:
    return ["tiles", slide, "--mpp", "0.5", "--tile-px", "128", "--out", "out", *extra]


def predict(slide: str, *extra: str, model: str = MODEL) -> list[str]:
    return ["predict", slide, "--model", model, "--out", "out", "--device", "cpu", *extra]


CASES: list[Case] = []


def add(name: str, argv, expect: str, setup: Setup | None = None, **kwargs) -> None:
    CASES.append(Case(f"slides/{name}", argv, expect, setup, **kwargs))


# -- sizes ---------------------------------------------------------------------------------------
for cmd, argv in (
    ("info", ["info", "huge.tif"]),
    ("tiles", tiles("huge.tif")),
    ("predict", predict("huge.tif")),
):
    add(
        f"{cmd}/header-claims-1e6-px-tiled",
        argv,
        r"1,000,000 x 1,000,000 px.*tile table lists 4",
        _huge_header("tiled"),
    )
add("info/header-claims-1e6-px-strips", ["info", "huge.tif"], r"strip table lists 8", _huge_header("strips"))
add("tiles/header-claims-1e6-px-one-strip", tiles("huge.tif"), r"far too few", _huge_header("one-strip"))
add("info/header-claims-1e6-px-one-strip", ["info", "huge.tif"], r"far too few", _huge_header("one-strip"))
add(
    "info/uncompressed-strips-too-short",
    ["info", "short.tif"],
    r"uncompressed strips hold only",
    _uncompressed_short(),
)
add(
    "info/png-header-claims-1e6-px",
    ["info", "huge.png"],
    r"PNG header claims 1,000,000.*far too few",
    _png_claiming(1_000_000, 1_000_000),
)
add(
    "tiles/png-header-claims-1e6-px",
    tiles("huge.png", "--slide-mpp", "0.5"),
    r"far too few",
    _png_claiming(1_000_000, 1_000_000),
)
add(
    "info/jpeg-header-claims-65535-px",
    ["info", "huge.jpg"],
    r"JPEG header claims 65,535 x 65,535",
    _jpeg_claiming(65_535, 65_535),
)
add(
    "tiles/whole-png-over-memory-budget",
    tiles("big.png", "--slide-mpp", "0.5"),
    r"needs .*MiB.*tiled pyramid",
    _png("big.png", lambda: he_like(1200, 1200)),
    env=_budget("1M"),
    exit_code=4,  # the machine's memory, not the file
)
add(
    "tiles/region-over-memory-budget",
    tiles("s.tif"),
    r"needs .* of memory.*allowed",
    RGB,
    env=_budget("64K"),
    exit_code=4,
)
add(
    "tiles/grid-over-memory-budget",
    # the options' extremes: 16 px tiles of 0.01 µm/px on a slide of 1000 µm/px: 10^13 tiles
    ["tiles", "s.tif", "--slide-mpp", "1000", "--mpp", "0.01", "--tile-px", "16", "--out", "out"],
    r"grid of 3,200,000 x 3,200,000 tiles .* needs .* TiB of memory",
    RGB,
    exit_code=4,
)
add("tiles/slide-mpp-1e9", tiles("s.tif", "--slide-mpp", "1e9"), r"slide.mpp|µm/px", RGB, exit_code=2)
add("predict/slide-mpp-1e9", predict("s.tif", "--slide-mpp", "1e9"), r"slide.mpp|µm/px", RGB, exit_code=2)

# -- tiles bigger than the slide, no tissue ----------------------------------------------------------
add(
    "predict/model-patch-100000-px",
    predict("s.tif", model="bigpatch"),
    r"512 x 512 px, smaller than one tile of 100000 px",
    _chain(RGB, _big_model),
)
add("tiles/tile-px-8192", tiles("s.tif", "--tile-px", "8192"), r"512 x 512 px, smaller than one tile", RGB)
PX1 = _tif("px1.tif", lambda: np.full((1, 1, 3), 200, np.uint8), photometric="rgb")
add("predict/one-pixel-tif", predict("px1.tif"), r"1 x 1 px, smaller than one tile", PX1)
add("tiles/one-pixel-tif", tiles("px1.tif"), r"1 x 1 px, smaller than one tile", PX1)
add(
    "predict/one-pixel-png",
    predict("px1.png", "--slide-mpp", "0.5"),
    r"1 x 1 px, smaller than one tile",
    _png("px1.png", lambda: np.full((1, 1, 3), 200, np.uint8)),
)
BLANK = _tif("blank.tif", lambda: np.full((512, 512, 3), 255, np.uint8), tile=(256, 256), photometric="rgb")
add("predict/blank-white", predict("blank.tif"), r"no tile .* tissue", BLANK)
add(
    "predict/blank-white-min-tissue-0",
    predict("blank.tif", "--min-tissue", "0"),
    r"flat colour",
    BLANK,
    kind="handled",
)
add("tiles/blank-white", tiles("blank.tif"), r"flat colour", BLANK, kind="handled")
NOISE_WHITE = _tif(
    "pale.tif",
    lambda: np.clip(245 + np.random.default_rng(0).normal(0, 3, (512, 512, 3)), 0, 255).astype(np.uint8),
    tile=(256, 256),
    photometric="rgb",
)
add("tiles/blank-with-noise", tiles("pale.tif"), r"looks blank", NOISE_WHITE, kind="handled")
add("tiles/sparse-all-tiles-missing", tiles("s.tif"), r"flat colour", _sparse, kind="handled")
BLACK = _tif("black.tif", lambda: np.zeros((512, 512, 3), np.uint8), tile=(256, 256), photometric="rgb")
add("tiles/all-black", tiles("black.tif"), r"flat colour \(gray level 0\)", BLACK, kind="handled")

# -- pixel layouts: converted with a warning -------------------------------------------------------
RGBA = _tif("rgba.tif", _rgba, tile=(256, 256), compression="zlib", photometric="rgb", extrasamples=[2])
for cmd, argv in (
    ("info", ["info", "rgba.tif"]),
    ("tiles", tiles("rgba.tif")),
    ("predict", predict("rgba.tif")),
):
    add(f"{cmd}/rgba-tif", argv, r"RGBA 8-bit.*over white", RGBA, kind="handled")
add(
    "tiles/rgba-png",
    tiles("rgba.png", "--slide-mpp", "0.5"),
    r"RGBA 8-bit.*over white",
    _png("rgba.png", _rgba),
    kind="handled",
)
PREMULT = _tif("pm.tif", _rgba, tile=(256, 256), photometric="rgb", extrasamples=[1])
add("info/rgba-premultiplied", ["info", "pm.tif"], r"RGBA 8-bit.*over white", PREMULT, kind="handled")
EXTRA = _tif("x.tif", _rgba, tile=(256, 256), photometric="rgb", extrasamples=[0])
add(
    "tiles/rgb-plus-unspecified-channel",
    tiles("x.tif"),
    r"RGB 8-bit \+ 1 extra channel.*ignored",
    EXTRA,
    kind="handled",
)
U16 = _tif(
    "u16.tif",
    lambda: he_like().astype(np.uint16) * 257,
    tile=(256, 256),
    compression="zlib",
    photometric="rgb",
)
for cmd, argv in (("info", ["info", "u16.tif"]), ("tiles", tiles("u16.tif"))):
    add(f"{cmd}/rgb-16-bit", argv, r"RGB 16-bit.*scaled from 0-65,535", U16, kind="handled")
add(
    "tiles/rgb-16-bit-png",
    tiles("u16.png", "--slide-mpp", "0.5"),
    r"RGB 16-bit.*scaled",
    _png("u16.png", lambda: he_like().astype(np.uint16) * 257),
    kind="handled",
)
GRAY = _tif("gray.tif", _gray, tile=(256, 256), compression="zlib", photometric="minisblack")
add(
    "info/grayscale-8-bit",
    ["info", "gray.tif"],
    r"grayscale 8-bit.*repeated as R, G and B",
    GRAY,
    kind="handled",
)
add("tiles/grayscale-8-bit", tiles("gray.tif"), r"no colour \(grayscale\)", GRAY, kind="handled")
add("predict/grayscale-8-bit", predict("gray.tif"), r"no tile .* tissue", GRAY)
add(
    "info/grayscale-16-bit",
    ["info", "g16.tif"],
    r"grayscale 16-bit",
    _tif("g16.tif", lambda: _gray().astype(np.uint16) * 257, photometric="minisblack"),
    kind="handled",
)
add(
    "info/grayscale-inverted",
    ["info", "inv.tif"],
    r"inverted",
    _tif("inv.tif", _gray, photometric="miniswhite"),
    kind="handled",
)
add(
    "info/gray-alpha-png",
    ["info", "ga.png"],
    r"grayscale \+ alpha 8-bit",
    _png("ga.png", lambda: np.dstack([_gray(), np.full((512, 512), 255, np.uint8)])),
    kind="handled",
)
add(
    "info/grayscale-jpeg",
    ["info", "g.jpg"],
    r"grayscale 8-bit",
    lambda d: (d / "g.jpg").write_bytes(imagecodecs.jpeg8_encode(_gray())),
    kind="handled",
)

# -- pixel layouts: refused with the fix, the same in info, tiles and predict ------------------------
F32 = _tif("f32.tif", lambda: he_like().astype(np.float32) / 255, tile=(256, 256), photometric="rgb")
for cmd, argv in (
    ("info", ["info", "f32.tif"]),
    ("tiles", tiles("f32.tif")),
    ("predict", predict("f32.tif")),
):
    add(f"{cmd}/rgb-float32", argv, r"RGB 32-bit float.*vips linear", F32)
add(
    "tiles/gray-float64",
    tiles("f64.tif"),
    r"grayscale 64-bit float",
    _tif("f64.tif", lambda: _gray().astype(np.float64), photometric="minisblack"),
)
CMYK = _tif(
    "cmyk.tif", lambda: np.dstack([he_like(), he_like()[..., :1]]), tile=(256, 256), photometric="separated"
)
for cmd, argv in (
    ("info", ["info", "cmyk.tif"]),
    ("tiles", tiles("cmyk.tif")),
    ("predict", predict("cmyk.tif")),
):
    add(f"{cmd}/cmyk-tif", argv, r"CMYK 8-bit.*vips colourspace", CMYK)
add("tiles/cmyk-jpeg", tiles("cmyk.jpg", "--slide-mpp", "0.5"), r"CMYK 8-bit", _cmyk_jpeg)
TWO = _tif(
    "two.tif", lambda: he_like()[..., :2], tile=(256, 256), photometric="minisblack", planarconfig="contig"
)
for cmd, argv in (
    ("info", ["info", "two.tif"]),
    ("tiles", tiles("two.tif")),
    ("predict", predict("two.tif")),
):
    add(f"{cmd}/two-channel", argv, r"2-channel 8-bit.*fluorescence", TWO)
add(
    "tiles/five-channel",
    tiles("five.tif"),
    r"5-channel",
    _tif(
        "five.tif", lambda: np.zeros((256, 256, 5), np.uint8), photometric="minisblack", planarconfig="contig"
    ),
)
add(
    "tiles/int16-signed",
    tiles("i16.tif"),
    r"16-bit signed.*vips cast",
    _tif("i16.tif", lambda: he_like().astype(np.int16), photometric="rgb"),
)
add(
    "info/uint32",
    ["info", "u32.tif"],
    r"32-bit.*vips cast",
    _tif("u32.tif", lambda: he_like().astype(np.uint32), photometric="rgb"),
)
add(
    "tiles/palette",
    tiles("pal.tif"),
    r"palette",
    _tif(
        "pal.tif",
        lambda: _gray(),
        photometric="palette",
        colormap=np.tile(np.arange(256, dtype=np.uint16) * 257, (3, 1)),
    ),
)
add(
    "tiles/bilevel-1-bit",
    tiles("bw.tif"),
    r"1-bit",
    _tif("bw.tif", lambda: _gray() > 128, photometric="minisblack"),
)
add(
    "tiles/planar-rgb",
    tiles("planar.tif"),
    r"separate plane.*vips tiffsave",
    _tif("planar.tif", lambda: np.moveaxis(he_like(), -1, 0), photometric="rgb", planarconfig="separate"),
)
add("info/cielab", ["info", "lab.tif"], r"CIELAB", _tif("lab.tif", he_like, photometric="cielab"))

# -- truncated and damaged ----------------------------------------------------------------------------
add(
    "info/truncated-tiles-past-end",
    ["info", "cut.tif"],
    r"truncated: level 0 has tiles up to byte",
    _tiles_past_end,
)
add("tiles/truncated-tiles-past-end", tiles("cut.tif"), r"truncated", _tiles_past_end)
add(
    "predict/truncated-tiles-past-end",
    predict("cut.tif", "--min-tissue", "0"),
    r"truncated at byte .*level 0: \d+ of 16 tiles lie past its end",
    _tiles_past_end,
    kind="handled",
)
add("info/pages-cut-off", ["info", "cut.tif"], r"truncated or damaged: .*past its end", _pages_cut_off)
add(
    "predict/pages-cut-off",
    predict("cut.tif"),
    r"truncated or damaged: it has .* bytes but an image directory .* Reading what is there",
    _pages_cut_off,
    kind="handled",
)
add(
    "info/truncated-header-6-bytes",
    ["info", "h.tif"],
    r"TIFF structure cannot be read",
    _chain(RGB, lambda d: (d / "h.tif").write_bytes((d / "s.tif").read_bytes()[:6])),
)
add(
    "info/truncated-first-ifd-gone",
    ["info", "c.tif"],
    r"truncated",
    _chain(
        _tif("s.tif", he_like, tile=(256, 256), compression="jpeg", photometric="rgb"),
        lambda d: (d / "c.tif").write_bytes(
            struct.pack("<2sHI", b"II", 42, 10**6) + (d / "s.tif").read_bytes()[8:1000]
        ),
    ),
)
add(
    "info/empty-file",
    ["info", "empty.svs"],
    r"empty \(0 bytes\)",
    lambda d: (d / "empty.svs").write_bytes(b""),
)
add("tiles/zero-width-page", tiles("s.tif"), r"no pixels \(0 x 512 px\)", _zero_width)
add("info/zero-width-page", ["info", "s.tif"], r"no pixels", _zero_width)
add("tiles/corrupt-tile", tiles("bad.tif"), r"tile 3 of level 0 .* fails to decode", _corrupt_tile)
add(
    "predict/corrupt-tile-filled",
    predict("bad.tif", "--min-tissue", "0"),
    r"tile 3 of level 0 .*read as background",
    _corrupt_tile,
    kind="handled",
)
add("info/circular-ifd-chain", ["info", "loop.tif"], r"damaged|circular", _circular_ifd)
add(
    "info/garbage-after-tiff-magic",
    ["info", "junk.tif"],
    r"junk\.tif: the file is truncated or damaged",
    _garbage_after_magic,
)
add(
    "tiles/truncated-png",
    tiles("t.png", "--slide-mpp", "0.5"),
    r"PNG data fails to decode",
    _chain(_png("full.png", he_like), _truncate("full.png", "t.png", 0.5)),
)
add(
    "info/png-without-ihdr",
    ["info", "x.png"],
    r"PNG header is damaged",
    lambda d: (d / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40),
)
add("info/png-zero-width", ["info", "z.png"], r"0 x 64 px: it has no pixels", _png_claiming(0, 64, "z.png"))
add(
    "info/jpeg-without-sof",
    ["info", "x.jpg"],
    r"JPEG header is damaged",
    lambda d: (d / "x.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 60),
)

# -- paths that are not slide files -------------------------------------------------------------------
add("info/symlink-loop", ["info", "a.svs"], r"symbolic link that loops", _link_loop)
add("tiles/symlink-loop", tiles("a.svs"), r"a\.svs: is a symbolic link that loops", _link_loop)
add("predict/symlink-loop", predict("a.svs"), r"a\.svs: is a symbolic link that loops", _link_loop)
add(
    "info/dangling-symlink",
    ["info", "l.svs"],
    r"symbolic link to .*gone\.svs, which does not exist",
    lambda d: os.symlink(d / "gone.svs", d / "l.svs"),
)
add("info/directory", ["info", "folder.svs"], r"is a directory", lambda d: (d / "folder.svs").mkdir())
add("info/fifo", ["info", "pipe.svs"], r"named pipe \(FIFO\)", _fifo, timeout_s=30)
add("tiles/fifo", tiles("pipe.svs"), r"named pipe \(FIFO\)", _fifo, timeout_s=30)
add("info/file-as-folder", ["info", "s.tif/x.svs"], r"s\.tif/x\.svs", RGB)
add(
    "info/binary-junk-with-svs-name",
    ["info", "j.svs"],
    r"not a TIFF, PNG or JPEG",
    lambda d: (d / "j.svs").write_bytes(bytes(range(256)) * 8),
)
if hasattr(os, "geteuid") and os.geteuid() != 0:  # root reads every file: no permission error to show
    add("info/permission-denied", ["info", "s.tif"], r"permission denied.*chmod", _unreadable)

# -- real slides (when ../shared/data is there) -------------------------------------------------------
if (SHARED / "wsi").is_dir():
    DAPI = SHARED / "wsi" / "test3-DAPI-2-387.ndpi"
    CMU = SHARED / "wsi" / "CMU-1-Small-Region.svs"

    def _copy_cut(source: Path, keep: float) -> Setup:
        def setup(d: Path) -> None:
            data = source.read_bytes()
            (d / f"cut{source.suffix}").write_bytes(data[: int(len(data) * keep)])

        return setup

    add(
        "tiles/fluorescence-ndpi",
        tiles(str(DAPI), "--mpp", "2", "--tile-px", "256"),
        r"fluorescence",
        None,
        kind="handled",
    )
    add("predict/fluorescence-ndpi", predict(str(DAPI)), r"looks like a fluorescence", kind="handled")
    for keep in (0.1, 0.5, 0.9, 0.99):
        add(
            f"info/real-svs-truncated-to-{keep:.0%}",
            ["info", "cut.svs"],
            r"truncated|no image|cannot be read",
            _copy_cut(CMU, keep),
        )
    add("tiles/real-svs-truncated-to-90%", tiles("cut.svs"), r"truncated", _copy_cut(CMU, 0.9))
    add("info/real-ndpi-truncated-to-90%", ["info", "cut.ndpi"], r"truncated", _copy_cut(DAPI, 0.9))
