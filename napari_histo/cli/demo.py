"""``histo demo``: the journey on the built-in synthetic sample, offline.

It grows with the project; today it opens the sample slide (napari when a
display is available, otherwise headless) and writes what it saw to ``--out``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click

from napari_histo.cli.info import format_info

__all__ = ["demo"]


@click.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("histo-demo"),
    show_default=True,
    help="Folder for the demo's outputs.",
)
@click.option(
    "--headless/--napari",
    default=None,
    help="Force headless (files only) or the napari viewer. Default: napari if a display exists.",
)
def demo(out: Path, headless: bool | None) -> None:
    """Run the built-in journey on a synthetic H&E slide (no download needed).

    \b
    Headless it writes to --out:
      slide-info.json        what `histo info --json` reports
      thumbnail.png          the slide overview
      region-level0.png      a full-resolution 1024 px region read lazily
    With a display it opens the slide in napari as a multiscale layer in µm.
    """
    from napari_histo.io import open_slide
    from napari_histo.io.samples import cache_dir, synthetic_slide_path

    out.mkdir(parents=True, exist_ok=True)
    click.echo(f"1/3 sample slide (generated once into {cache_dir()}) ...")
    t0 = time.perf_counter()
    path = synthetic_slide_path()
    click.echo(f"    {path} ready in {time.perf_counter() - t0:.1f} s")

    t0 = time.perf_counter()
    slide = open_slide(path)
    click.echo(f"2/3 opened in {1000 * (time.perf_counter() - t0):.1f} ms\n")
    record = slide.info()
    click.echo(format_info(record))
    _write_atomic(out / "slide-info.json", json.dumps(record, indent=2).encode())

    import imagecodecs

    _write_atomic(out / "thumbnail.png", imagecodecs.png_encode(slide.thumbnail(1024)))
    rows, cols = slide.dimensions
    region = slide.read_region((rows // 2 - 512, cols // 2 - 512), 0, (1024, 1024))
    _write_atomic(out / "region-level0.png", imagecodecs.png_encode(region))
    click.echo(f"\n3/3 wrote {out}/slide-info.json, thumbnail.png, region-level0.png")

    if headless is None:
        headless = not _has_display()
    if not headless:
        try:
            from napari_histo._napari.viewer import show_slide
        except ImportError:
            click.echo("napari is not installed: `pip install 'napari-histo[napari]'` to view the slide.")
            return
        show_slide(slide, title="napari-histo demo")


def _has_display() -> bool:
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _write_atomic(path: Path, payload: bytes) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(payload)
    os.replace(tmp, path)
