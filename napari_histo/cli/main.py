"""``histo``: the napari-histo command line.

Sub-commands live in their own modules and are imported only when run, so
``histo --help`` and ``histo info`` start without loading torch.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from typing import Any

import click

from napari_histo import __version__
from napari_histo.cli._report import (
    EXIT_BUG,
    EXIT_CODES_HELP,
    EXIT_INTERRUPTED,
    describe_failure,
    echo_error,
    one_line_warnings,
)

# name -> "module:attribute"; the module is imported only when the command runs
SUBCOMMANDS = {
    "info": "napari_histo.cli.info:info",
    "demo": "napari_histo.cli.demo:demo",
    "qupath": "napari_histo.cli.qupath:qupath",
    "tiles": "napari_histo.cli.tiles:tiles",
    "predict": "napari_histo.cli.predict:predict",
    "explain": "napari_histo.cli.explain:explain",
    "embed": "napari_histo.cli.embed:embed",
    "export-wsinfer": "napari_histo.cli.export_wsinfer:export_wsinfer_command",
    "cohort": "napari_histo.cli.cohort:cohort",
    "train": "training.cli:train",
    "cluster": "training.cli:cluster",
    "evaluate": "training.cli:evaluate",
}

EPILOG = (
    """\b
Examples:
  histo info slide.svs                 levels, µm/px, vendor, associated images
  histo info slide.ndpi --json         the same as JSON, for scripts
  histo tiles slide.svs --mpp 0.5 --tile-px 224 --out patches/
  histo predict slide.svs --model MODEL_DIR --out results/
  histo explain slide.svs --model pcam-mobilenetv2 --out why/   Grad-CAM: where the evidence lies
  histo embed slide.svs --out embeddings/   tile embeddings (for slide-level models)
  histo cohort predict cohort/ --model MODEL_DIR --out results/   every slide, on Dask
  histo qupath validate annotations.geojson
  histo demo                           the whole journey on the built-in sample

Every command has its own --help.

"""
    + EXIT_CODES_HELP
)

#: environment variable that turns on --debug (tracebacks for every error)
DEBUG_ENV = "HISTO_DEBUG"
_debug = {"on": False}


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


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        _debug["on"] = True


@click.group(cls=LazyGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="napari-histo")
@click.option(
    "--debug",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_set_debug,
    help=f"Show the traceback of every error, not just one line (also: {DEBUG_ENV}=1).",
)
def cli() -> None:
    """napari-histo: whole-slide images for pathologists and model builders.

    Open SVS, NDPI and OME-TIFF slides lazily, tile them, run models and move
    results to and from QuPath.
    """


def main(argv: list[str] | None = None) -> Any:
    """Console entry point: failures become one clear line and an exit code (see ``histo --help``)."""
    return run_command(cli, argv, "histo")


def run_command(command: click.Command, argv: list[str] | None, prog_name: str, **extra: Any) -> Any:
    """Run a click command as a console program, never ending an expected failure in a traceback.

    * usage errors: as click shows them, exit code 2;
    * project errors (:class:`~napari_histo.errors.HistoError`), ``qupath_bridge`` errors, OS errors
      (disk full, read-only, permission, missing path ...) and memory refusals: one line
      ``error: ...`` with the fix and an exit code per kind (see ``EXIT_CODES_HELP``);
    * Ctrl+C: one line, exit code 130;
    * anything else is a bug: its traceback, a line saying how to report it, exit code 70.

    Warnings and tifffile's log lines are shown as one ``warning: ...`` line each while it runs.
    ``--debug`` (or ``HISTO_DEBUG=1``) adds the traceback to every error.
    """
    _debug["on"] = os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")
    with one_line_warnings():
        try:
            result = command.main(args=argv, prog_name=prog_name, standalone_mode=False, **extra)
        except (click.exceptions.Abort, KeyboardInterrupt):
            echo_error("interrupted; files already finished are kept, so the same command goes on from there")
            sys.exit(EXIT_INTERRUPTED)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except Exception as exc:  # noqa: BLE001 - every failure ends here: one line, or a bug's traceback
            failure = describe_failure(exc)
            if failure is None or _debug["on"]:
                traceback.print_exception(exc, file=sys.stderr)
            if failure is None:
                echo_error(
                    f"unexpected {type(exc).__name__}: {exc}. This is a bug in napari-histo {__version__}, "
                    "not a problem with your input: please report it with the command you ran and the "
                    "traceback above"
                )
                sys.exit(EXIT_BUG)
            echo_error(failure.message)
            sys.exit(failure.code)
    if isinstance(result, int) and not isinstance(result, bool) and result != 0:
        sys.exit(result)  # a command ended with ctx.exit(code)
    return result


if __name__ == "__main__":
    sys.exit(main())
