"""SimCLR pre-training (Chen et al. 2020): two augmented views, NT-Xent over 2N embeddings.

The backbone's pooled features go through a small projection head that is
thrown away afterwards; the backbone keeps what it learnt.  Two ways to use it:

* ``ssl.enabled: true``: pre-train, then fine-tune in the same run (recipe A);
* ``ssl.only: true``: pre-train only, on tiles nobody labelled (``ssl.data``: folders of
  tiles, ``tiles.csv`` files or slides), and save the backbone as a model directory
  (``run_dir/model``) that another recipe fine-tunes from with ``model.weights: <run>/model``.

Each epoch writes ``ssl_last.pt`` (network, projector, optimiser, epoch, losses, and the settings
and data it was made with) and ``ssl_history.csv``; running the same recipe again continues
after the last finished epoch, skips a finished pre-training, and refuses a checkpoint made
with other settings (naming the key) or other tiles.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from training.augment import augment_batch
from training.batches import epoch_order, iterate_batches
from training.config import AugmentConfig, ConfigError, TrainingConfig

__all__ = [
    "PLACEHOLDER_CLASSES",
    "SIMCLR_AUGMENT",
    "SSL_HISTORY",
    "SSL_LAST",
    "check_ssl_data",
    "nt_xent",
    "pooled_features",
    "pretrain_before_fit",
    "pretrain_only",
    "pretrain_simclr",
    "unlabelled_samples",
]

#: the two views differ in geometry, scale, stain and intensity
SIMCLR_AUGMENT = AugmentConfig(
    flips=True, rot90=True, rotate_deg=30, zoom=0.2, shift=0.1, brightness=0.3, contrast=0.3, hed_sigma=0.05
)
SSL_LAST = "ssl_last.pt"
SSL_HISTORY = "ssl_history.csv"
#: ``model.json`` needs two or more classes; an SSL backbone has none, so its (zeroed) head has these
PLACEHOLDER_CLASSES = ("ssl_placeholder_1", "ssl_placeholder_2")
_UNLABELLED = ("unlabelled",)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """Normalised-temperature cross-entropy of 2N embeddings: each view's positive is its pair."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    sim = z @ z.T / temperature
    n = z1.shape[0]
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def pooled_features(network: Any, x: torch.Tensor) -> torch.Tensor:
    """(n, d) pooled backbone features of a timm classifier."""
    if not hasattr(network, "forward_features"):
        raise ConfigError("SimCLR and clustering need a timm classifier backbone, not a segmentation network")
    return network.forward_head(network.forward_features(x), pre_logits=True)


# -- unlabelled tiles ------------------------------------------------------------------------------


def _base(config: TrainingConfig) -> Path:
    return Path(config.recipe_path).parent if config.recipe_path else Path.cwd()


def _resolve(config: TrainingConfig, item: str) -> Path:
    path = Path(item).expanduser()
    return (path if path.is_absolute() else _base(config) / path).resolve()


def check_ssl_data(config: TrainingConfig) -> None:
    """Every ``ssl.data`` entry exists, or one line naming it and the fix (before anything is loaded)."""
    for item in config.ssl.data:
        path = _resolve(config, item)
        if not path.exists():
            raise ConfigError(
                f"ssl.data = {item!r}: not found ({path}; relative paths start at the recipe's folder). "
                "Give a folder of image tiles (png/jpg/tif, searched recursively), a tiles.csv or a "
                "slide file"
            )


def unlabelled_samples(config: TrainingConfig, work_dir: Path) -> Any:
    """The tiles ``ssl.data`` names as one :class:`~training.samples.Samples` (one placeholder label).

    Folders: every image file below them; ``.csv``: a ``histo tiles`` list; other files: slides,
    whose tissue is tiled into ``work_dir/ssl_tiles`` (resumable) at ``model.spacing_um_px``.
    """
    from training.data import IMAGE_EXTENSIONS, read_tiles_csv
    from training.samples import Samples

    check_ssl_data(config)
    paths: list[str] = []
    groups: list[str] = []
    slides: list[tuple[str, Path]] = []
    for item in config.ssl.data:
        path = _resolve(config, item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
            if not files:
                raise ConfigError(
                    f"ssl.data = {item!r}: no image tiles ({', '.join(IMAGE_EXTENSIONS)}) in {path} or "
                    "below; point it at a folder of tiles, a tiles.csv or a slide file"
                )
            paths += [str(p) for p in files]
            groups += [item] * len(files)
        elif path.suffix.lower() == ".csv":
            listed = read_tiles_csv(path)
            paths += list(listed.paths)
            groups += [str(g) for g in listed.groups]  # type: ignore[union-attr]
        else:
            slides.append((item, path))
    if slides:
        tiled = _tile_slides(config, slides, work_dir / "ssl_tiles")
        paths += list(tiled.paths)
        groups += [str(g) for g in tiled.groups]  # type: ignore[union-attr]
    if len(paths) < 2:
        raise ConfigError(
            f"ssl.data = {list(config.ssl.data)}: {len(paths)} tile(s); SimCLR needs 2 or more "
            "(pairs of views)"
        )
    samples = Samples(
        labels=np.zeros(len(paths), np.int64), class_names=_UNLABELLED, paths=tuple(paths),
        groups=np.asarray(groups, dtype=str), split=np.full(len(paths), "train"),
    )  # fmt: skip
    if config.ssl.max_tiles and len(samples) > config.ssl.max_tiles:
        pick = np.random.default_rng([config.train.seed, 7]).permutation(len(samples))[: config.ssl.max_tiles]
        samples = samples.subset(np.sort(pick))
    return samples


def _tile_slides(config: TrainingConfig, slides: list[tuple[str, Path]], out: Path) -> Any:
    """Tissue tiles of ``slides`` (no annotations), written as ``histo tiles`` writes them."""
    from napari_histo.core.progress import run_to_end
    from napari_histo.pipeline.session import open_session
    from napari_histo.pipeline.tiles import export_slide_tiles
    from training.data import read_tiles_csv

    names = set()
    for item, path in slides:
        with open_session(path) as session:
            export = run_to_end(export_slide_tiles(
                session, out, target_mpp=config.model.spacing_um_px, tile_px=config.ssl.tile_px,
                min_tissue=config.ssl.min_tissue,
            ))  # fmt: skip
            names.add(session.name)
        if not len(export.grid):
            raise ConfigError(
                f"ssl.data = {item!r}: no tissue tile of {config.ssl.tile_px} px at "
                f"{config.model.spacing_um_px:g} µm/px with ssl.min_tissue = {config.ssl.min_tissue:g}; "
                "lower ssl.min_tissue or ssl.tile_px"
            )
    listed = read_tiles_csv(out / "tiles.csv")
    return listed.subset(np.flatnonzero(np.isin(listed.groups, sorted(names))))


def _ssl_fold(config: TrainingConfig, run_dir: Path, rank: int) -> Any:
    from training import ddp
    from training.loop import Fold

    with ddp.rank_zero_first(rank):  # rank 0 tiles the slides; the others resume its finished tiles
        samples = unlabelled_samples(config, run_dir)
    if config.data.cache:
        samples = samples.with_pixels()
    pixels = None if samples.images is None else torch.from_numpy(samples.images)
    return Fold(samples, pixels)


def _digest(fold: Any) -> str:
    """Which tiles: content hashes where known, else paths and sizes, else the pixels."""
    samples, digest = fold.samples, hashlib.sha256()
    if samples.hashes is not None:
        keys = sorted(str(h) for h in samples.hashes)
    elif samples.paths:
        keys = sorted(f"{p}:{Path(p).stat().st_size if Path(p).exists() else -1}" for p in samples.paths)
    else:
        keys = [hashlib.md5(np.ascontiguousarray(samples.images).tobytes()).hexdigest()]
    for key in keys:
        digest.update(f"{key};".encode())
    return digest.hexdigest()


def _settings(config: TrainingConfig) -> dict[str, Any]:
    """What ``ssl_last.pt`` must share with the run that continues it (more ``ssl.epochs`` continue)."""
    from training.resume import resume_settings

    data = resume_settings(config)
    kept = {k: data[k] for k in ("data", "model", "augment", "ssl") if k in data}
    kept["ssl"] = {k: v for k, v in kept["ssl"].items() if k != "epochs"}
    kept["train"] = {"seed": data["train"]["seed"]}
    return kept


# -- pre-training ----------------------------------------------------------------------------------


def pretrain_simclr(network: Any, fold: Any, ctx: Any, run_dir: Path | None = None) -> list[float]:
    """Train ``network``'s backbone with NT-Xent on ``fold`` (labels unused); returns loss per epoch.

    With ``run_dir``: ``ssl_last.pt`` after each epoch (resumed from when ``train.resume``),
    ``ssl_history.csv`` and ``progress.json``; rank 0 writes files and prints one line per epoch.
    """
    cfg = ctx.config.ssl
    width = getattr(network, "head_hidden_size", None) or network.num_features  # what pre_logits gives
    projector = torch.nn.Sequential(
        torch.nn.Linear(width, width), torch.nn.ReLU(), torch.nn.Linear(width, cfg.projection_dim)
    ).to(ctx.device)
    params = [*network.parameters(), *projector.parameters()]
    optimizer = torch.optim.Adam(params, lr=cfg.lr)
    aug = replace(ctx.config, augment=SIMCLR_AUGMENT) if cfg.strong_augment else ctx.config
    view_ctx = replace(ctx, config=aug)
    lead = ctx.rank == 0
    rows: list[dict[str, Any]] = []
    key = None
    if run_dir is not None:
        key = {
            "settings": json.dumps(_settings(ctx.config), sort_keys=True),
            "ssl_data_digest": _digest(fold),
        }
        saved = _saved_ssl(ctx.config, run_dir / SSL_LAST, key)
        if saved is not None:
            network.load_state_dict(saved["model"])
            projector.load_state_dict(saved["projector"])
            optimizer.load_state_dict(saved["optimizer"])
            rows = list(saved["history"])
            done = len(rows)
            if lead and ctx.progress:
                what = "skipped" if done >= cfg.epochs else f"continuing at epoch {done + 1}"
                print(
                    f"SimCLR: {done} of {cfg.epochs} epochs done in {run_dir / SSL_LAST}; {what}", flush=True
                )
    on_step = None
    if run_dir is not None and lead:
        from training.report import StepProgress

        on_step = StepProgress(run_dir, cfg.epochs)
    n = len(fold.samples)
    steps = max(n // cfg.batch_size, 1)
    for epoch in range(len(rows), cfg.epochs):
        network.train()
        order = epoch_order(n, ctx.config.train.seed, 10_000 + epoch, shuffle=True)
        total, count, start = 0.0, 0, time.perf_counter()
        batches = iterate_batches(fold.samples, order, cfg.batch_size, pixels=fold.pixels,
                                  size=ctx.input_size, num_workers=ctx.config.train.num_workers,
                                  drop_last=True)  # fmt: skip
        for step, (images, _, _) in enumerate(batches):
            if on_step is not None:
                on_step(epoch, step, steps)
            x = _views(images, view_ctx)
            z = projector(pooled_features(network, x))
            loss = nt_xent(*z.chunk(2), temperature=cfg.temperature)
            if not torch.isfinite(loss):
                raise ConfigError(
                    f"the SimCLR loss became {loss.item()} at epoch {epoch + 1}, step {step} "
                    f"(ssl.lr {cfg.lr:g}); stopping. Lower ssl.lr or check the tiles for blank or bad ones"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * len(images), count + len(images)
        seconds = time.perf_counter() - start
        row = {"epoch": epoch + 1, "nt_xent": round(total / max(count, 1), 5),
               "images_per_s": round(count / max(seconds, 1e-9), 1),
               "seconds": round(seconds, 2)}  # fmt: skip
        rows.append(row)
        if on_step is not None:
            on_step(epoch, steps, steps)
        if lead and ctx.progress:
            print(f"SimCLR epoch {epoch + 1}/{cfg.epochs}: nt_xent {row['nt_xent']:.4f}  "
                  f"({row['images_per_s']:.0f} img/s)", flush=True)  # fmt: skip
        if run_dir is not None and lead:
            from training.checkpoint import save_checkpoint

            state = {"model": network.state_dict(), "projector": projector.state_dict(),
                     "optimizer": optimizer.state_dict(), "epoch": epoch + 1, "history": rows}  # fmt: skip
            save_checkpoint(state | (key or {}), run_dir / SSL_LAST)
            _write_history(rows, run_dir / SSL_HISTORY)
    return [float(r["nt_xent"]) for r in rows]


def pretrain_before_fit(network: Any, train: Any, ctx: Any, run_dir: Path, *, resuming: bool) -> list[float]:
    """``ssl.enabled``: SimCLR on ``ssl.data`` (default: the training fold ``train``) before fine-tuning.

    Skipped entirely when the supervised phases resume from ``last.pt`` (its weights hold the
    pre-training already); else continued from ``ssl_last.pt`` as :func:`pretrain_simclr` says.
    """
    if resuming:
        if ctx.rank == 0 and ctx.progress:
            print("SimCLR skipped: the supervised training resumes from last.pt, which holds the pre-trained "
                  "weights", flush=True)  # fmt: skip
        return []
    fold = _ssl_fold(ctx.config, run_dir, ctx.rank) if ctx.config.ssl.data else train
    return pretrain_simclr(network, fold, ctx, run_dir)


def _saved_ssl(config: TrainingConfig, path: Path, key: dict[str, str]) -> dict[str, Any] | None:
    """``ssl_last.pt`` when this run continues it; refuses one made with other settings or tiles."""
    from training.checkpoint import load_checkpoint
    from training.resume import differences

    if not (config.train.resume and path.exists()):
        return None
    saved = load_checkpoint(path)
    afresh = (
        "Run the recipe it was made with to resume; to start afresh, train into another folder (name=...) "
        "or set train.resume=false (overwrites this run)"
    )
    before = saved.get("settings")
    if isinstance(before, str):
        changes = differences(json.loads(before), json.loads(key["settings"]))
        if changes:
            shown = "; ".join(changes[:4]) + (f"; and {len(changes) - 4} more" if len(changes) > 4 else "")
            raise ConfigError(
                f"{path} was made with other settings ({shown}), so it is not resumed. {afresh}"
            )
    if saved.get("ssl_data_digest") not in (None, key["ssl_data_digest"]):
        raise ConfigError(
            f"{path} was made from other tiles (tiles were added, removed or changed), so it is not resumed. "
            f"Restore the tiles to resume. {afresh.split('; ', 1)[1].capitalize()}"
        )
    if not {"projector", "optimizer", "history"} <= set(saved):
        raise ConfigError(f"{path}: not an SSL checkpoint of histo train; delete it to start again")
    return saved


def _write_history(rows: list[dict[str, Any]], path: Path) -> None:
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["epoch", "nt_xent", "images_per_s", "seconds"])
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def _views(images: torch.Tensor, ctx: Any) -> torch.Tensor:
    x = images.to(ctx.device).permute(0, 3, 1, 2).float().div_(255)
    if x.shape[-1] != ctx.input_size:
        x = F.interpolate(x, size=(ctx.input_size,) * 2, mode="bilinear", antialias=True)
    two = torch.cat([augment_batch(x, ctx.config.augment)[0], augment_batch(x, ctx.config.augment)[0]])
    return (two - ctx.mean) / ctx.std


# -- SSL only: the backbone as a model directory ---------------------------------------------------


def pretrain_only(
    config: TrainingConfig, run_dir: Path, device: torch.device, rank: int = 0, world: int = 1,
    progress: bool = True,
) -> tuple[Path, Path, dict[str, Any], list[dict[str, Any]]]:  # fmt: skip
    """``ssl.only``: SimCLR on ``ssl.data`` (or the training patches), then ``run_dir/model``.

    The model directory holds the whole network: the pre-trained backbone and a zeroed two-class
    head named :data:`PLACEHOLDER_CLASSES` (``model.json`` needs two or more classes; a zero head
    predicts 50 % for each, i.e. nothing). It is a feature extractor to fine-tune
    (``model.weights: <run>/model`` carries its mean/std and input size), not a classifier.
    Returns ``(run_dir, model_dir, metrics, history)``.
    """
    from napari_histo.models import save_model
    from training.loop import Context
    from training.network import build_network
    from training.prepare import make_spec, prepare_data
    from training.report import environment, write_json, write_resolved_config

    if config.ssl.data:
        fold = _ssl_fold(config, run_dir, rank)
        source = f"unlabelled tiles: {[str(_resolve(config, item)) for item in config.ssl.data]}"
    else:
        from training import ddp

        with ddp.rank_zero_first(rank) as lead:
            fold = prepare_data(config, run_dir, record=lead)["train"]
        source = f"the training split of data.source = {config.data.source!r}, labels unused"
    if rank == 0:
        write_resolved_config(config, run_dir)
        write_json(environment(), run_dir / "environment.json")
    placeholder = replace(fold.samples, class_names=PLACEHOLDER_CLASSES)
    spec_config = replace(config, model=replace(config.model, class_colors=()))
    spec = make_spec(spec_config, placeholder)
    network = build_network(config, spec).to(device)
    ctx = Context(
        config=config, device=device, input_size=spec.input_size,
        mean=torch.tensor(spec.mean, device=device).view(1, 3, 1, 1),
        std=torch.tensor(spec.std, device=device).view(1, 3, 1, 1),
        loss_fn=torch.nn.functional.cross_entropy, rank=rank, world=world, progress=progress,
    )  # fmt: skip
    if progress and rank == 0:
        print(f"SimCLR only: {len(fold.samples)} tiles ({source}), {config.ssl.epochs} epoch(s)", flush=True)
    losses = pretrain_simclr(network, fold, ctx, run_dir)
    history = _read_history(run_dir / SSL_HISTORY)
    metrics = {
        "ssl": {"epochs": len(losses), "nt_xent": losses[-1] if losses else None, "tiles": len(fold.samples)}
    }
    model_dir = run_dir / "model"
    if rank == 0:
        with torch.no_grad():
            for param in network.get_classifier().parameters():
                param.zero_()
        from training.provenance import base_provenance
        from training.report import data_note, format_data_note, write_run_readme

        note = data_note(config)
        provenance = {
            **base_provenance(config),  # no absolute paths of this machine in model.json
            "data": note,
            "self_supervised": "SimCLR (NT-Xent), no labels: a feature extractor, zeroed head",
            "ssl_data": source,
        }
        description = (
            f"SimCLR backbone pre-trained without labels on {len(fold.samples)} tiles ({source}). A feature "
            "extractor to fine-tune (model.weights: this folder), NOT a classifier: its two classes "
            f"{list(PLACEHOLDER_CLASSES)} are placeholders (model.json needs two or more) and its head is "
            "zero, so it predicts 50 % for each on every patch."
        )
        spec = spec.with_updates(provenance=provenance, metrics=metrics, description=description,
                                 name=config.model.name or config.name)  # fmt: skip
        save_model(network, spec, model_dir)
        write_json({"summary": {"data": note}, **metrics}, run_dir / "metrics.json")
        write_run_readme(run_dir, config, note, metrics)
        if progress:
            print(format_data_note(note), flush=True)
            print(
                f"SimCLR backbone saved: {model_dir} (fine-tune it with --set model.weights={model_dir})",
                flush=True,
            )
    return run_dir, model_dir, metrics, history


def _read_history(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]
