"""Patch sources, de-duplication, splits and balancing on tiny real files."""

from __future__ import annotations

from pathlib import Path

import imagecodecs
import numpy as np
import pytest

from tests.conftest import shared_file
from training.config import DataConfig
from training.data import DataError, dedup, load_samples, read_class_folders, read_idc, read_labels_csv
from training.splits import sample_weights, split_samples, undersample


def _png(path: Path, value: int, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = np.clip(rng.normal(value, 20, (8, 8, 3)), 0, 255).astype(np.uint8)
    path.write_bytes(imagecodecs.png_encode(pixels))


def test_class_folders_with_fixed_split_and_duplicates(tmp_path: Path) -> None:
    for split in ("train", "valid"):
        for label, value in (("normal", 60), ("tumour", 200)):
            for i in range(4):
                _png(tmp_path / split / label / f"s{i}_x0_y{i}.png", value, seed=i + (split == "valid") * 10)
    _png(tmp_path / "train" / "normal" / "copy.png", 60, seed=0)  # byte-identical to s0 of train/normal
    _png(tmp_path / "valid" / "tumour" / "leak.png", 200, seed=1)  # a training patch copied into valid
    samples = read_class_folders(tmp_path)
    assert samples.class_names == ("normal", "tumour") and len(samples) == 18
    unique = dedup(samples)
    assert len(unique) == 16
    splits = split_samples(unique, DataConfig(source="folders"))
    assert len(splits["train"]) == 8 and len(splits["valid"]) == 8
    assert not set(splits["train"].hashes) & set(splits["valid"].hashes)


def test_empty_class_folder_is_named(tmp_path: Path) -> None:
    _png(tmp_path / "normal" / "a.png", 60)
    (tmp_path / "tumour").mkdir()
    with pytest.raises(DataError, match=r"class folder .*tumour is empty"):
        read_class_folders(tmp_path)


def test_a_single_class_is_refused(tmp_path: Path) -> None:
    for i in range(3):
        _png(tmp_path / "normal" / f"{i}.png", 60, seed=i)
    with pytest.raises(DataError, match="only one class"):
        load_samples(DataConfig(source="folders", root=str(tmp_path)), tmp_path)


def test_idc_file_names_and_patient_split(tmp_path: Path) -> None:
    for patient in ("8863", "9036", "10253", "12345"):
        for i in range(6):
            label = i % 2
            _png(
                tmp_path / patient / str(label) / f"{patient}_idx5_x{i * 50}_y100_class{label}.png",
                60 + 100 * label,
                seed=int(patient) + i,
            )
    (tmp_path / "README.txt").write_text("not a patch")
    samples = read_idc(tmp_path, ["negative", "idc"])
    assert len(samples) == 24 and samples.counts() == {"negative": 12, "idc": 12}
    config = DataConfig(source="idc", group_by="patient", valid_fraction=0.25)
    splits = split_samples(samples, config, seed=1)
    assert not set(splits["train"].groups) & set(splits["valid"].groups)
    assert len(splits["valid"]) == 6


def test_idc_without_matching_names(tmp_path: Path) -> None:
    _png(tmp_path / "x.png", 10)
    with pytest.raises(DataError, match=r"class<C>\.png.*x\.png"):
        read_idc(tmp_path)


def test_stratified_split_undersampling_and_weights(tmp_path: Path) -> None:
    for i in range(30):
        _png(tmp_path / ("normal" if i < 24 else "tumour") / f"{i}.png", 100, seed=i)
    samples = read_class_folders(tmp_path)
    splits = split_samples(samples, DataConfig(source="folders", valid_fraction=0.5), seed=0)
    assert splits["valid"].counts() == {"normal": 12, "tumour": 3}
    assert undersample(samples).counts() == {"normal": 6, "tumour": 6}
    w = sample_weights(samples.labels, 2)
    assert w[samples.labels == 0].sum() == pytest.approx(w[samples.labels == 1].sum())


def test_pcam_labels_csv_dedup_by_md5() -> None:
    csv_path = shared_file("pcam", "labels.csv")
    samples = read_labels_csv(csv_path, csv_path.parent, ["normal", "tumour"])
    assert len(samples) == 23_000
    unique = dedup(samples)
    # labels.csv lists byte-identical copies inside splits (none across splits)
    assert len(unique) < len(samples)
    assert len(set(unique.hashes)) == len(unique)
    valid = unique.subset(np.flatnonzero(unique.split == "valid"))
    assert valid.counts() == {"normal": 1500, "tumour": 1407}
