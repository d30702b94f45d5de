"""The classic MIL check on real pixels: bags of real PCam patches, embedded with ImageNet MobileNetV2.

A *bag* holds ``bag_size`` real 96 px PCam patches; a positive bag holds ``k`` tumour patches
(``k`` drawn from ``k_range``) among normal ones, a negative bag only normal patches.  These
are bags composed from independent patches, **not slides**: there is no spatial context and a
patch may appear in several bags of the same split.  Training bags (and the selection split
carved from them for early stopping) use only PCam *train* patches, test bags only PCam
*valid* patches; patches are md5-deduplicated within the pools and a valid patch whose md5
occurs in the train split is dropped, so no pixel content is shared between train and test.

Every pooled patch is embedded once with the ImageNet MobileNetV2 (``mobilenetv2_100`` with
``mobilenet_v2-b0353104.pth``, pooled 1280-d features at the patch's native 96 px) and the
features are cached in a ``.npy`` under :func:`cache_dir`.  :func:`write_bag_tables` writes the
bags as ``histo embed`` tables plus ``slides.csv`` so the ordinary MIL recipe trains on them;
:func:`run_experiment` trains, tests, and measures how well attention ranks the tumour patches.
"""

from __future__ import annotations

import csv
import hashlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "BagSet",
    "PatchPool",
    "attention_auc",
    "embed_pool",
    "make_bags",
    "run_experiment",
    "write_bag_tables",
]

PCAM_ROOT = Path(os.environ.get("HISTO_SHARED_DATA", "/work/shared/data")) / "pcam"
WEIGHTS = (
    Path(os.environ.get("HISTO_SHARED_DATA", "/work/shared/data")) / "weights" / "mobilenet_v2-b0353104.pth"
)
ENCODER = "mobilenetv2_100 (ImageNet, timm), pooled features at 96 px"
#: patches pooled per (PCam split, label): the bags draw from these
POOL = {("train", 0): 6000, ("train", 1): 1000, ("valid", 0): 1500, ("valid", 1): 500}


def cache_dir() -> Path:
    """The patch features' cache: ``$HISTO_PCAM_BAGS_CACHE``, else the temp folder (kept across runs)."""
    default = Path(tempfile.gettempdir()) / "napari_histo_pcam_bags"
    return Path(os.environ.get("HISTO_PCAM_BAGS_CACHE", default))


@dataclass
class PatchPool:
    """The pooled patches of one PCam split: file paths, labels (0 normal, 1 tumour), md5, features."""

    paths: list[str]
    labels: np.ndarray
    md5: list[str]
    features: np.ndarray | None = None


def read_pools(root: Path = PCAM_ROOT, seed: int = 0) -> dict[str, PatchPool]:
    """``{"train", "valid"}`` pools (sizes :data:`POOL`), md5-deduplicated, no valid md5 in train."""
    with open(root / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    train_md5 = {r["md5"] for r in rows if r["split"] == "train"}
    rng = np.random.default_rng([seed, 2018])
    pools = {}
    for split in ("train", "valid"):
        seen: set[str] = set()
        picked: list[dict[str, str]] = []
        for label in (0, 1):
            candidates = []
            for r in rows:
                if r["split"] != split or int(r["label"]) != label or r["md5"] in seen:
                    continue
                if split != "train" and r["md5"] in train_md5:
                    continue
                seen.add(r["md5"])
                candidates.append(r)
            order = rng.permutation(len(candidates))[: POOL[(split, label)]]
            picked += [candidates[i] for i in sorted(order)]
        pools[split] = PatchPool(
            [str(root / r["path"]) for r in picked],
            np.array([int(r["label"]) for r in picked]),
            [r["md5"] for r in picked],
        )
    return pools


def _encoder() -> Any:
    import timm

    from napari_histo.models.weights import load_imagenet_weights

    model = timm.create_model("mobilenetv2_100", pretrained=False)
    load_imagenet_weights(model, WEIGHTS)
    return model.eval()


def embed_pool(pool: PatchPool, batch: int = 128, progress: bool = True) -> np.ndarray:
    """float16 (n, 1280) features of every pooled patch, cached by the pool's md5 list."""
    import torch
    from PIL import Image

    key = hashlib.sha256(("\n".join(pool.md5) + ENCODER).encode()).hexdigest()[:16]
    path = cache_dir() / f"features_{key}.npy"
    if path.exists():
        pool.features = np.load(path)
        return pool.features
    model = _encoder()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    out, start = [], time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(pool.paths), batch):
            images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in pool.paths[i : i + batch]])
            x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - mean) / std
            out.append(
                model.forward_head(model.forward_features(x), pre_logits=True).numpy().astype(np.float16)
            )
            if progress:
                done = min(i + batch, len(pool.paths))
                print(
                    f"\rembedded {done}/{len(pool.paths)} patches "
                    f"({done / (time.perf_counter() - start):.0f}/s)",
                    end="",
                    flush=True,
                )
    if progress:
        print(flush=True)
    features = np.concatenate(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part.npy")
    np.save(tmp, features)
    os.replace(tmp, path)
    pool.features = features
    return features


@dataclass
class BagSet:
    """Bags as index lists into a pool, with bag labels and per-patch labels."""

    members: list[np.ndarray]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.members)


def make_bags(
    pool: PatchPool,
    n_bags: int,
    bag_size: tuple[int, int] = (32, 64),
    k_range: tuple[int, int] = (1, 5),
    seed: int = 0,
) -> BagSet:
    """Half positive bags (k tumour patches among normal ones), half negative (normal only)."""
    rng = np.random.default_rng(seed)
    normal, tumour = np.flatnonzero(pool.labels == 0), np.flatnonzero(pool.labels == 1)
    members, labels = [], []
    for b in range(n_bags):
        size = int(rng.integers(bag_size[0], bag_size[1] + 1))
        positive = b % 2
        k = int(rng.integers(k_range[0], k_range[1] + 1)) if positive else 0
        bag = np.concatenate(
            [rng.choice(tumour, k, replace=False), rng.choice(normal, size - k, replace=False)]
        )
        members.append(rng.permutation(bag))
        labels.append(positive)
    order = rng.permutation(n_bags)
    return BagSet([members[i] for i in order], np.array(labels)[order])


def write_bag_tables(
    out: Path,
    pools: dict[str, PatchPool],
    bags: dict[str, BagSet],
    valid_fraction: float = 0.2,
    seed: int = 0,
) -> Path:
    """``out/tables/<bag>.embeddings.zarr`` (the histo embed format) and ``out/slides.csv``.

    ``bags["train"]`` (from the PCam train pool) is split into train and valid (the selection
    split for early stopping, stratified); ``bags["test"]`` comes from the PCam valid pool.
    ``coords`` hold (pool index, 0) so attention maps back to patches; ``tissue`` the patch label.
    """
    import zarr

    tables = out / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 7])
    train_bags = bags["train"]
    split = np.array(["train"] * len(train_bags), dtype=object)
    for label in (0, 1):
        index = rng.permutation(np.flatnonzero(train_bags.labels == label))
        split[index[: int(round(len(index) * valid_fraction))]] = "valid"
    rows = []
    for source, pool_name in (("train", "train"), ("test", "valid")):
        pool, bagset = pools[pool_name], bags[source]
        assert pool.features is not None
        for i, (member, label) in enumerate(zip(bagset.members, bagset.labels)):
            name = f"{source}_bag{i:04d}"
            group = zarr.open_group(str(tables / f"{name}.embeddings.zarr"), mode="w", zarr_format=2)
            group.create_array("features", data=pool.features[member].astype(np.float16))
            group.create_array("coords", data=np.stack([member, np.zeros_like(member)], 1).astype(np.int64))
            group.create_array("tissue", data=pool.labels[member].astype(np.float32))
            group.attrs.update(
                {
                    "encoder": ENCODER,
                    "encoder_hash": hashlib.sha256(ENCODER.encode()).hexdigest()[:16],
                    "feature_dim": int(pool.features.shape[1]),
                    "mpp": 0.972,
                    "tile_px": 96,
                    "slide": name,
                    "complete": True,
                }
            )
            rows.append(
                {
                    "slide": name,
                    "label": ["normal", "tumour"][int(label)],
                    "patient": name,
                    "split": split[i] if source == "train" else "test",
                }
            )
    with open(out / "slides.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["slide", "label", "patient", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return out


def attention_auc(
    attention: list[np.ndarray], patch_labels: list[np.ndarray], bag_labels: np.ndarray
) -> dict[str, float]:
    """How well attention ranks tumour patches first, within positive bags.

    ``pooled``: one ROC AUC over every patch of every positive bag, the score being the
    attention times the bag size (1 = uniform attention, so bags of different sizes compare);
    ``per_bag_mean``: the mean of each positive bag's own AUC; ``top1``: the fraction of positive
    bags whose most attended patch is a tumour patch.
    """
    from training.metrics import roc_auc

    pos = [i for i, y in enumerate(bag_labels) if y == 1]
    scores = np.concatenate([attention[i] * len(attention[i]) for i in pos])
    truth = np.concatenate([patch_labels[i] for i in pos]).astype(bool)
    per_bag = [roc_auc(patch_labels[i].astype(bool), attention[i]) for i in pos]
    top1 = [bool(patch_labels[i][int(np.argmax(attention[i]))]) for i in pos]
    return {
        "pooled": roc_auc(truth, scores),
        "per_bag_mean": float(np.nanmean(per_bag)),
        "top1": float(np.mean(top1)),
        "positive_bags": len(pos),
    }


def run_experiment(
    out: Path,
    architecture: str = "abmil",
    n_train: int = 400,
    n_test: int = 200,
    bag_size: tuple[int, int] = (32, 64),
    k_range: tuple[int, int] = (1, 5),
    seed: int = 0,
    overrides: tuple[str, ...] = (),
    progress: bool = True,
    n_boot: int = 1000,
) -> dict[str, Any]:
    """Build (or reuse) the bags, train the recipe on them, test on the unseen bags; returns the figures."""
    from napari_histo.models.mil import load_mil_model
    from training.config import load_config
    from training.metrics import bootstrap_intervals
    from training.mil import evaluate_bags
    from training.mil_data import load_bags
    from training.run import train

    out = Path(out).resolve()  # recipe paths are read relative to the recipe's folder
    started = time.perf_counter()
    pools = read_pools(seed=seed)
    for pool in pools.values():
        embed_pool(pool, progress=progress)
    embed_s = time.perf_counter() - started
    bags = {
        "train": make_bags(pools["train"], n_train, bag_size, k_range, seed),
        "test": make_bags(pools["valid"], n_test, bag_size, k_range, seed + 1),
    }
    data_dir = out / f"bags_{n_train}_{n_test}_{bag_size[0]}-{bag_size[1]}_k{k_range[0]}-{k_range[1]}_s{seed}"
    if not (data_dir / "slides.csv").exists():
        write_bag_tables(data_dir, pools, bags, seed=seed)
    recipe = Path(__file__).parent / "recipes" / "mil_abmil_pcam_bags.yaml"
    config = load_config(
        recipe,
        [
            f"data.root={data_dir / 'tables'}",
            f"data.labels_csv={data_dir / 'slides.csv'}",
            f"output_dir={out / 'runs'}",
            f"name={architecture}_{data_dir.name}",
            f"model.architecture={architecture}",
            *overrides,
        ],
    )
    t0 = time.perf_counter()
    result = train(config, progress=progress)
    train_s = time.perf_counter() - t0
    network, _ = load_mil_model(result.model_dir)
    parts, _ = load_bags(config)
    test = parts["test"]
    metrics, probs, attention = evaluate_bags(network, test)
    patch_labels = [t.tissue.astype(np.int64) for t in test.tables]
    ci = bootstrap_intervals(
        test.labels, probs, test.class_names, n_boot=n_boot, seed=seed, keys=("roc_auc",)
    )
    return {
        "architecture": architecture,
        "bags": {k: len(v) for k, v in parts.items()},
        "patches_embedded": {k: len(p.paths) for k, p in pools.items()},
        "bag_auc": ci["roc_auc"],
        "bag_accuracy": metrics["accuracy"],
        "attention_auc": attention_auc(attention, patch_labels, test.labels),
        "epochs": len(result.history),
        "seconds": {"embed_or_cache": round(embed_s, 1), "train": round(train_s, 1)},
        "run_dir": str(result.run_dir),
    }
