"""``histo export-wsinfer``: a model for QuPath's WSInfer extension."""

from __future__ import annotations

from pathlib import Path

import click

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
    from napari_histo.models.export import export_wsinfer

    path = export_wsinfer(model, out)
    click.echo(f"wrote {path}/torchscript_model.pt and {path}/config.json")
