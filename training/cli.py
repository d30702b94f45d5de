"""``histo train RECIPE.yaml [--set key=value ...]`` and ``histo cluster``."""

from __future__ import annotations

import shlex
import sys

import click

__all__ = ["cluster", "train"]


@click.command(
    epilog="""\b
Examples:
  histo train training/recipes/pcam_mobilenetv2.yaml
  histo train recipe.yaml --set train.batch_size=32 --set data.max_per_class=200
  torchrun --nproc_per_node 4 -m training.cli recipe.yaml   (DDP)
"""
)
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe value: a dotted key and a YAML value, e.g. train.batch_size=32 or "
    "'train.phases=[{epochs: 1, lr: 1e-4}]'. Repeatable.",
)
@click.option("--quiet", is_flag=True, help="No progress bars or per-epoch lines.")
def train(recipe: str, overrides: tuple[str, ...], quiet: bool) -> None:
    """Train a model from a YAML recipe; writes a run directory with model/, metrics.json and plots."""
    import os

    from training.config import load_config
    from training.run import train as run_training

    os.environ.setdefault(
        "HISTO_TRAIN_COMMAND",
        "histo train " + shlex.join([recipe, *(x for o in overrides for x in ("--set", o))]),
    )
    config = load_config(recipe, list(overrides))
    result = run_training(config, progress=not quiet)
    valid = result.metrics.get("valid", {})
    shown = {k: round(v, 4) for k, v in valid.items() if isinstance(v, float)}
    click.echo(f"model: {result.model_dir}")
    click.echo(f"validation: {shown}")


@click.command()
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--architecture", default="resnet18", show_default=True, help="timm backbone for the features.")
@click.option("--weights", default="none", help="Local ImageNet weight file (or 'none').")
@click.option("--max-samples", default=500, show_default=True, help="Patches per folder.")
@click.option("--out", default="clustering", show_default=True, type=click.Path(file_okay=False))
def cluster(folders: tuple[str, ...], architecture: str, weights: str, max_samples: int, out: str) -> None:
    """Do the patches in FOLDERS separate? Backbone features → PCA → KMeans, matched to the folders."""
    from pathlib import Path

    from training.clustering import cluster_folders

    report = cluster_folders([Path(f) for f in folders], architecture=architecture, weights=weights,
                             max_samples=max_samples, out_dir=Path(out))  # fmt: skip
    for space, scores in report.items():
        click.echo(
            f"{space}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items() if isinstance(v, float))
        )


def main() -> None:  # torchrun -m training.cli RECIPE.yaml
    train.main(args=sys.argv[1:], prog_name="histo train")


if __name__ == "__main__":
    main()
