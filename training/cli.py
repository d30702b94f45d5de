"""``histo train RECIPE.yaml [key=value ...]``, ``histo cluster`` and ``histo evaluate``.

``python -m training.cli RECIPE.yaml`` trains too.

Errors of a recipe, its data or its weights are one line ``error: ...`` (through
:func:`napari_histo.cli.main.run_command`), never a traceback.
"""

from __future__ import annotations

import shlex
import sys

import click

__all__ = ["cluster", "evaluate", "train"]


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
    click.echo(f"model: {result.model_dir}")
    if "ssl" in result.metrics and "valid" not in result.metrics:  # SimCLR only: no labelled split
        ssl = result.metrics["ssl"]
        click.echo(
            f"SimCLR: {ssl['epochs']} epoch(s) on {ssl['tiles']} tiles, final nt_xent {ssl['nt_xent']}"
        )
        return
    valid = result.metrics.get("valid", {})
    shown = {k: round(v, 4) for k, v in valid.items() if isinstance(v, float)}
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


# fmt: off
@click.command(
    epilog="""\b
Examples:
  histo evaluate pcam-mobilenetv2 --data ../shared/data/pcam --split valid --out eval/
  histo evaluate run/model --data DATA --split test --tta --bootstrap 2000 --out eval-tta/
  histo evaluate run/model --data DATA --split test --fit-temperature selection --out eval/
"""
)
@click.argument("model")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False),
              help="Labelled data root: labels.csv (path, label, split[, md5]) or split/class folders.")
@click.option("--split", default="valid", show_default=True, help="The split to report (or 'all').")
@click.option("--tta/--no-tta", default=None,
              help="Dihedral test-time augmentation (mean over 8 rotations/flips) [default: the model's].")
@click.option("--temperature", type=click.FloatRange(0.01, 100), default=None,
              help="Divide the logits by this before the softmax [default: the model's].")
@click.option("--fit-temperature", "fit_split", default=None, metavar="SPLIT",
              help="Fit the temperature on this split (the selection split; never the one reported).")
@click.option("--bootstrap", default=1000, show_default=True, type=click.IntRange(min=0),
              help="Bootstrap resamples for the 95% intervals (0: none).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--allow-touched", is_flag=True,
              help="Report on a split that trained or selected the model (marked touched); else refused.")
@click.option("--near-duplicates/--no-near-duplicates", default=True, show_default=True,
              help="Count near-duplicates (re-encoded, flipped, rotated) of the split in the other splits.")
@click.option("--device", default="auto", show_default=True)
@click.option("--batch-size", default=256, show_default=True, type=click.IntRange(min=1))
@click.option("--max-per-class", default=0, show_default=True, type=click.IntRange(min=0),
              help="At most this many random patches per class (quick checks; 0 = all).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for metrics.json, reliability.png, confusion.png, predictions.csv.")
def evaluate(model: str, data: str, split: str, tta: bool | None, temperature: float | None,
             fit_split: str | None, bootstrap: int, seed: int, allow_touched: bool, near_duplicates: bool,
             device: str, batch_size: int, max_per_class: int, out: str) -> None:
    # fmt: on
    """Measure MODEL on one labelled split, once: metrics with bootstrap 95% intervals, ECE, reliability plot.

    Refuses a split that the model's provenance says trained it or chose its epochs/temperature
    (same data root): report on a split the model never saw. Patches are de-duplicated on md5.
    """
    from training.evaluate import evaluate_model, format_table

    result = evaluate_model(
        model, data, split, tta=tta, temperature=temperature, fit_split=fit_split, bootstrap=bootstrap,
        seed=seed, allow_touched=allow_touched, near_duplicates=near_duplicates, device=device,
        batch_size=batch_size, max_per_class=max_per_class, out_dir=out, echo=click.echo,
    )  # fmt: skip
    click.echo(format_table(result.metrics))
    click.echo(f"written: {', '.join(p.name for p in result.files)} in {out}")


def main(argv: list[str] | None = None) -> None:
    """``python -m training.cli RECIPE.yaml`` (also under ``torchrun``): ``histo train``, one-line errors."""
    from napari_histo.cli.main import run_command

    run_command(train, sys.argv[1:] if argv is None else list(argv), "histo train")


if __name__ == "__main__":
    main()
