"""Fine-tune a model directory on class-folder tiles: the GUI's hand-off to ``histo train``.

``finetune_config`` builds the recipe through the recipe schema (:mod:`training.config`),
so a wrong value stops here, in the caller's process, naming the key.  The command line
writes that recipe into the run folder and trains exactly as ``histo train`` does::

    python -m training.finetune --model MODEL_DIR --tiles TILES_ROOT --runs RUN_ROOT \\
        [--name fine-tuned] [--epochs 3] [--lr 1e-4] [--batch-size 32] [--quiet]

The run folder is ``RUN_ROOT/NAME``: ``recipe.yaml`` (this recipe, rerun it with
``histo train``), ``history.csv`` (one row per epoch), ``progress.json`` (per batch, for the dock), and at the
end ``model/`` (``model.json`` + ``weights.safetensors``), whose path is the last line
printed on stdout.  A recipe or data error prints one ``error: ...`` line on stderr and
exits with the code ``histo`` uses for bad input (3; see ``histo --help``).
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from napari_histo.cli.main import run_command
from napari_histo.models import load_spec
from napari_histo.models.spec import WEIGHTS_FILE
from training.config import ConfigError, TrainingConfig, config_from_dict, config_to_dict, load_config
from training.data import read_class_folders

__all__ = ["RECIPE_FILE", "finetune_config", "main", "write_recipe"]

#: the recipe written into the run folder ``RUN_ROOT/NAME``
RECIPE_FILE = "recipe.yaml"


def finetune_config(
    model_dir: str | os.PathLike[str],
    tiles_root: str | os.PathLike[str],
    run_root: str | os.PathLike[str],
    *,
    epochs: int = 3,
    lr: float = 1e-4,
    batch_size: int = 32,
    name: str = "fine-tuned",
) -> TrainingConfig:
    """A recipe that starts from ``model_dir/weights.safetensors`` and trains on ``tiles_root/<class>/``.

    Classes, architecture, spacing, patch and input size, normalisation and colours are the
    model's (``model_dir/model.json``); training runs in ``run_root/name``.  Raises
    :class:`~training.config.ConfigError` naming the key for a value the schema refuses
    (``train.phases[0].epochs``, ``train.batch_size``, ``data.root`` ...), and
    :class:`~training.samples.DataError` (a ``ConfigError``) when a class folder of ``tiles_root``
    is empty or missing, and :class:`~napari_histo.models.ModelSpecError` when ``model_dir``
    holds no model.
    """
    spec = load_spec(model_dir)
    tiles = Path(tiles_root).expanduser().resolve()
    weights = (Path(model_dir).expanduser() / WEIGHTS_FILE).resolve()
    recipe: dict[str, Any] = {
        "name": name,
        "output_dir": str(Path(run_root).expanduser().resolve()),
        "data": {
            "source": "folders",
            "root": str(tiles),
            "class_names": list(spec.class_names),
            "valid_fraction": 0.2,
            "dedup": True,
        },
        "model": {
            "architecture": spec.architecture,
            "weights": str(weights),
            "spacing_um_px": spec.spacing_um_px,
            "patch_size_pixels": spec.patch_size_pixels,
            "input_size": spec.input_size,
            "mean": list(spec.mean),
            "std": list(spec.std),
            "class_colors": [list(c) for c in spec.class_colors],
            "name": f"{spec.name or spec.architecture}-{name}",
            "description": f"{spec.description} Fine-tuned on corrected tiles.".strip(),
        },
        "augment": {"flips": True, "rot90": True},
        "train": {
            "batch_size": batch_size,
            "monitor": "loss",
            "phases": [{"epochs": epochs, "trainable": "all", "optimizer": "adam", "lr": lr}],
        },
    }
    config = config_from_dict(recipe, source=f"fine-tune of {model_dir}")
    if not name or Path(name).name != name or name in (".", ".."):
        raise ConfigError(f"name = {name!r}: the run folder's name must be one plain folder name")
    if not tiles.is_dir():
        raise ConfigError(
            f"data.root = {str(tiles)!r}: tiles folder not found; give a folder with one sub-folder per "
            f"class {list(spec.class_names)}"
        )
    if not weights.is_file():
        raise ConfigError(f"model.weights = {str(weights)!r}: {WEIGHTS_FILE} not found in {model_dir}")
    read_class_folders(tiles, spec.class_names)  # DataError naming an empty or missing class folder
    return config


def write_recipe(config: TrainingConfig, path: str | os.PathLike[str]) -> Path:
    """Write ``config`` as a YAML recipe that ``histo train`` (or :func:`load_config`) reads back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_recipe_text(config))
    return path


def _recipe_text(config: TrainingConfig) -> str:
    import yaml

    data = config_to_dict(config)
    data.pop("recipe_path", None)  # set by load_config from where the file is
    return str(yaml.safe_dump(data, sort_keys=False))


@click.command(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="""\b
Writes RUNS/NAME/recipe.yaml, trains (RUNS/NAME/history.csv grows one row per epoch) and
prints the new model directory RUNS/NAME/model as the last line of stdout.
""",
)
@click.option(
    "--model", "model_dir", required=True, metavar="DIR", help="Model directory to start from (model.json)."
)
@click.option(
    "--tiles", "tiles_root", required=True, metavar="DIR", help="Folder of class sub-folders of tiles."
)
@click.option(
    "--runs", "run_root", required=True, metavar="DIR", help="Folder that receives the run folder NAME."
)
@click.option("--name", default="fine-tuned", show_default=True, help="Run folder name.")
@click.option("--epochs", default=3, show_default=True, type=int, help="Epochs of fine-tuning.")
@click.option("--lr", default=1e-4, show_default=True, type=float, help="Adam learning rate.")
@click.option("--batch-size", default=32, show_default=True, type=int, help="Tiles per batch.")
@click.option("--quiet", is_flag=True, help="No progress bars or per-epoch lines.")
def finetune(
    model_dir: str, tiles_root: str, run_root: str, name: str, epochs: int, lr: float, batch_size: int,
    quiet: bool,
) -> None:  # fmt: skip
    """Fine-tune MODEL on the class folders in TILES, as `histo train` would."""
    from training.run import train

    config = finetune_config(
        model_dir, tiles_root, run_root, epochs=epochs, lr=lr, batch_size=batch_size, name=name
    )
    recipe = Path(config.output_dir) / config.name / RECIPE_FILE
    if recipe.is_file() and recipe.read_text() != _recipe_text(config):
        raise ConfigError(
            f"{recipe.parent} holds a fine-tuning run made with other settings (its {RECIPE_FILE} differs); "
            "choose another --name, or delete that folder to start afresh"
        )
    recipe = write_recipe(config, recipe)
    click.echo(f"recipe: {recipe}")
    command = (click.get_current_context().obj or {}).get("command", "python -m training.finetune")
    previous = os.environ.get("HISTO_TRAIN_COMMAND")
    os.environ["HISTO_TRAIN_COMMAND"] = previous or command  # the model's provenance names this command
    try:
        result = train(load_config(recipe), progress=not quiet)
    finally:
        if previous is None:
            del os.environ["HISTO_TRAIN_COMMAND"]
    click.echo(str(result.model_dir))


def main(argv: list[str] | None = None) -> None:
    """``python -m training.finetune``: errors of the recipe or data are one line on stderr."""
    args = sys.argv[1:] if argv is None else list(argv)
    run_command(finetune, args, "python -m training.finetune",
                obj={"command": "python -m training.finetune " + shlex.join(args)})  # fmt: skip


if __name__ == "__main__":
    main()
