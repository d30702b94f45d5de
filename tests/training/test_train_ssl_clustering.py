"""SimCLR's NT-Xent and the clustering check on synthetic stain variants."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from sklearn.metrics import adjusted_rand_score

from training.clustering import cluster_report, hungarian_accuracy, run_clustering
from training.config import DataConfig
from training.loop import Context, Fold
from training.losses import make_loss
from training.ssl import nt_xent, pretrain_simclr
from training.synthetic import synthetic_samples


def test_nt_xent_prefers_matching_pairs() -> None:
    z = torch.nn.functional.normalize(torch.randn(8, 16, generator=torch.Generator().manual_seed(0)), dim=1)
    aligned = nt_xent(z, z + 0.01 * torch.randn(8, 16), temperature=0.5)
    shuffled = nt_xent(z, z[torch.randperm(8, generator=torch.Generator().manual_seed(1))], temperature=0.5)
    assert aligned < shuffled
    # lower bound: log(2N - 1) is the loss of uniform similarities
    assert nt_xent(torch.ones(4, 3), torch.ones(4, 3)).item() == pytest.approx(np.log(7), rel=1e-5)


def test_simclr_loss_decreases_on_a_tiny_set(tiny) -> None:  # type: ignore[no-untyped-def]
    # views from the recipe's mild augmentation (flips, 90° turns, brightness) so 12 steps suffice
    config = tiny(
        "ssl.enabled=true",
        "ssl.epochs=6",
        "ssl.batch_size=16",
        "ssl.lr=0.001",
        "ssl.strong_augment=false",
        "augment.brightness=0.1",
        "data.synthetic_per_class=16",
    )
    torch.manual_seed(0)
    samples = synthetic_samples(config.data)
    network = timm.create_model("resnet10t", num_classes=2)
    ctx = Context(
        config=config,
        device=torch.device("cpu"),
        input_size=32,
        mean=torch.full((1, 3, 1, 1), 0.5),
        std=torch.full((1, 3, 1, 1), 0.25),
        loss_fn=make_loss("ce"),
    )
    losses = pretrain_simclr(network, Fold(samples, torch.from_numpy(samples.images)), ctx)
    assert len(losses) == 6
    assert min(losses[-2:]) < losses[0] - 0.3, losses
    assert losses[0] == pytest.approx(np.log(31), abs=0.3)  # starts near chance: log(2N - 1)


def test_hungarian_accuracy_ignores_cluster_names() -> None:
    groups = np.array([0, 0, 0, 1, 1, 1])
    assert hungarian_accuracy(groups, np.array([1, 1, 1, 0, 0, 0])) == 1.0
    assert hungarian_accuracy(groups, np.array([1, 1, 0, 0, 0, 0])) == pytest.approx(5 / 6)


def test_two_stain_variants_separate_and_mixed_groups_do_not(tmp_path: Path) -> None:
    samples = synthetic_samples(DataConfig(source="synthetic_stain", synthetic_per_class=60, synthetic_px=32))
    network = timm.create_model("resnet18", num_classes=0).eval()
    scores = run_clustering(
        network,
        samples.images,
        samples.labels,
        samples.class_names,
        (0.485, 0.456, 0.406),
        (0.229, 0.224, 0.225),
        tmp_path,
    )
    assert scores["pixels"]["accuracy"] > 0.9 and scores["pixels"]["ari"] > 0.6, scores
    assert (tmp_path / "clustering.png").exists() and (tmp_path / "clustering.json").exists()
    rng = np.random.default_rng(0)
    random_groups = rng.permutation(samples.labels)  # groups that do not follow the stain
    report = cluster_report(samples.images.reshape(len(samples), -1) / 255.0, random_groups)
    assert report["ari"] < 0.1
    assert report["ari"] == pytest.approx(adjusted_rand_score(random_groups, report["clusters"]))
