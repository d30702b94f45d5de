"""``histo``: the napari-histo command line.

Sub-commands live in their own modules and are imported only when run, so
``histo --help`` and ``histo info`` start without loading torch.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from napari_histo import __version__
from napari_histo.errors import HistoError

# name -> "module:attribute"; the module is imported only when the command runs
SUBCOMMANDS = {
    "info": "napari_histo.cli.info:info",
    "demo": "napari_histo.cli.demo:demo",
    "qupath": "napari_histo.cli.qupath:qupath",
    "tiles": "napari_histo.cli.tiles:tiles",
    "predict": "napari_histo.cli.predict:predict",
    "export-wsinfer": "napari_histo.cli.export_wsinfer:export_wsinfer_command",
    "train": "training.cli:train",
    "cluster": "training.cli:cluster",
}

EPILOG = """\b
Examples:
  histo info slide.svs                 levels, µm/px, vendor, associated images
  histo info slide.ndpi --json         the same as JSON, for scripts
  histo tiles slide.svs --mpp 0.5 --tile-px 224 --out patches/
  histo predict slide.svs --model MODEL_DIR --out results/
  histo qupath validate annotations.geojson
  histo demo                           the whole journey on the built-in sample

Every command has its own --help.
"""


class LazyGroup(click.Group):
    """A click group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)


@click.group(cls=LazyGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="napari-histo")
def cli() -> None:
    """napari-histo: whole-slide images for pathologists and model builders.

    Open SVS, NDPI and OME-TIFF slides lazily, tile them, run models and move
    results to and from QuPath.
    """


def main(argv: list[str] | None = None) -> Any:
    """Console entry point: project errors become one clear line and exit code 2."""
    return run_command(cli, argv, "histo")


def run_command(command: click.Command, argv: list[str] | None, prog_name: str, **extra: Any) -> Any:
    """Run a click command as a console program: usage errors as click shows them, a project error
    (:class:`~napari_histo.errors.HistoError`) as one line ``error: ...`` and exit code 2, never a traceback.
    """
    try:
        return command.main(args=argv, prog_name=prog_name, standalone_mode=False, **extra)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except HistoError as exc:
        click.secho("error: " + " ".join(str(exc).split()), fg="red", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
