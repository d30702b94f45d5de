"""``histo train RECIPE.yaml [key=value ...]`` and ``histo cluster``; ``python -m training.cli`` trains too.

Errors of a recipe, its data or its weights are one line ``error: ...`` (through
:func:`napari_histo.cli.main.run_command`), never a traceback.
"""

from __future__ import annotations

import shlex
import sys

import click

__all__ = ["cluster", "train"]


@click.command(
    epilog="""\b
Examples:
  histo train training/recipes/pcam_mobilenetv2.yaml
  histo train recipe.yaml train.batch_size=32 data.max_per_class=200
  histo train recipe.yaml --set 'train.phases=[{epochs: 1, lr: 1e-4}]'
  torchrun --nproc_per_node 4 -m training.cli recipe.yaml   (DDP)
"""
)
@click.argument("recipe", type=click.Path())  # a missing file or a folder: one line from load_config
@click.argument("extra", nargs=-1, metavar="[KEY=VALUE]...")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe value: a dotted key and a YAML value, e.g. train.batch_size=32, "
    "train.phases[0].lr=1e-4 or 'train.phases=[{epochs: 1, lr: 1e-4}]'. Repeatable; KEY=VALUE "
    "after the recipe does the same.",
)
@click.option("--quiet", is_flag=True, help="No progress bars or per-epoch lines.")
def train(recipe: str, extra: tuple[str, ...], overrides: tuple[str, ...], quiet: bool) -> None:
    """Train a model from a YAML recipe; writes a run directory with model/, metrics.json and plots.

    Running the same command again resumes from the run's last checkpoint; a run made with
    other settings is not resumed (the error says what changed).
    """
    import os

    from training.config import load_config
    from training.run import train as run_training

    for item in extra:
        if "=" not in item:
            raise click.UsageError(
                f"{item!r}: give one recipe, then overrides as key=value (e.g. train.batch_size=32)"
            )
    overrides = (*overrides, *extra)
    previous = os.environ.get("HISTO_TRAIN_COMMAND")
    if previous is None:  # the model's provenance names this command
        os.environ["HISTO_TRAIN_COMMAND"] = "histo train " + shlex.join(
            [recipe, *(x for o in overrides for x in ("--set", o))]
        )
    try:
        config = load_config(recipe, list(overrides))
        result = run_training(config, progress=not quiet)
    finally:
        if previous is None:
            os.environ.pop("HISTO_TRAIN_COMMAND", None)
    valid = result.metrics.get("valid", {})
    shown = {k: round(v, 4) for k, v in valid.items() if isinstance(v, float)}
    click.echo(f"model: {result.model_dir}")
    click.echo(f"validation: {shown}")


@click.command()
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--architecture",
    default=None,
    help="timm backbone for the features [default: the model directory's, the shipped file's, or resnet18].",
)
@click.option(
    "--weights",
    default="none",
    show_default=True,
    help="Local ImageNet weight file (.pth/.safetensors), a model directory (model.json + "
    "weights.safetensors, e.g. a trained or SSL model), or 'none' (random features).",
)
@click.option(
    "--max-samples", default=500, show_default=True, type=click.IntRange(min=1), help="Patches per folder."
)
@click.option("--out", default="clustering", show_default=True, type=click.Path(file_okay=False))
def cluster(
    folders: tuple[str, ...], architecture: str | None, weights: str, max_samples: int, out: str
) -> None:
    """Do the patches in FOLDERS separate? Backbone features → PCA → KMeans, matched to the folders."""
    from pathlib import Path

    from training.clustering import cluster_folders

    report = cluster_folders([Path(f) for f in folders], architecture=architecture, weights=weights,
                             max_samples=max_samples, out_dir=Path(out))  # fmt: skip
    for space, scores in report.items():
        click.echo(
            f"{space}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items() if isinstance(v, float))
        )


def main(argv: list[str] | None = None) -> None:
    """``python -m training.cli RECIPE.yaml`` (also under ``torchrun``): ``histo train``, one-line errors."""
    from napari_histo.cli.main import run_command

    run_command(train, sys.argv[1:] if argv is None else list(argv), "histo train")


if __name__ == "__main__":
    main()
