"""``histo export-wsinfer``: a model for QuPath's WSInfer extension."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import click

from napari_histo.cli._report import naming_folder

__all__ = ["export_wsinfer_command"]


@click.command("export-wsinfer")
@click.argument("model")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
def export_wsinfer_command(model: str, out: Path) -> None:
    """Write MODEL (a model directory or built-in name) as TorchScript + config.json into OUT.

    \b
    In QuPath: copy OUT into the WSInfer extension's local model folder
    (Extensions > WSInfer > Open model cache), e.g. <cache>/napari-histo/my-model/main/,
    then choose it in the WSInfer dialog.
    Example:
      histo export-wsinfer runs/pcam-mobilenet/model wsinfer/my-model/main
    """
    from napari_histo.models.export import CONFIG_FILE, TORCHSCRIPT_FILE, export_wsinfer
    from napari_histo.models.loading import resolve_model_dir
    from napari_histo.models.spec import WEIGHTS_FILE

    weights = resolve_model_dir(model) / WEIGHTS_FILE
    _check_free_space(out, (weights.stat().st_size if weights.is_file() else 0) + 2**20)
    try:
        with naming_folder(out):
            path = export_wsinfer(model, out)
    finally:  # a full disk or an interrupt leaves no half-written file behind
        for name in (TORCHSCRIPT_FILE, CONFIG_FILE):
            (out / f"{name}.part").unlink(missing_ok=True)
    click.echo(f"wrote {path}/torchscript_model.pt and {path}/config.json")


def _check_free_space(out: Path, needed: int) -> None:
    """Refuse before writing when the TorchScript file cannot fit (torch aborts on a full disk mid-save)."""
    existing = next((p for p in (out, *out.absolute().parents) if p.exists()), None)
    if existing is None or not existing.is_dir():
        return
    free = shutil.disk_usage(existing).free
    if free < needed:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out))
