"""Near-duplicates across splits: a perceptual hash that JPEG re-encoding, flips and rotations keep."""

from __future__ import annotations

import csv
import time

import numpy as np
import pytest

from tests.conftest import SHARED_DATA
from training.dedup import (
    DEFAULT_MAX_DISTANCE,
    HASH_BITS,
    canonical_hashes,
    dihedral_hashes,
    find_near_duplicates,
    hamming,
    is_blank,
    near_duplicate_pairs,
    perceptual_hashes,
)

PCAM = SHARED_DATA / "pcam"
needs_pcam = pytest.mark.skipif(not (PCAM / "labels.csv").is_file(), reason="shared PCam patches absent")


def _pcam_paths(n: int, split: str = "train", seed: int = 0) -> list[str]:
    """``n`` random PCam patches of ``split`` that have no byte-identical copy."""
    with open(PCAM / "labels.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == split and r["n_exact_copies_in_subset"] == "1"]
    pick = np.random.default_rng(seed).choice(len(rows), n, replace=False)
    return [str(PCAM / rows[i]["path"]) for i in sorted(pick)]


def _reencode(images: np.ndarray, quality: int) -> np.ndarray:
    import imagecodecs

    return np.stack([imagecodecs.jpeg8_decode(imagecodecs.jpeg8_encode(im, level=quality)) for im in images])


def _transforms(images: np.ndarray) -> list[np.ndarray]:
    turns = [np.rot90(images, k, axes=(1, 2)) for k in range(4)]
    return [np.ascontiguousarray(t) for t in turns + [t[:, :, ::-1] for t in turns]]


def test_every_rotation_and_flip_has_the_same_canonical_hash():
    images = np.random.default_rng(0).integers(0, 256, (5, 40, 40, 3), dtype=np.uint8)
    hashes = [canonical_hashes(dihedral_hashes(t)) for t in _transforms(images)]
    for h in hashes[1:]:
        np.testing.assert_array_equal(h, hashes[0])
    variants = dihedral_hashes(images)
    assert variants.shape == (8, 5, 4) and variants.dtype == np.uint64
    assert len({tuple(v) for v in variants[:, 0]}) == 8  # the 8 views hash differently


def test_pairs_within_one_set_and_identical_images():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    images[4] = np.rot90(images[1])
    pairs, distance = near_duplicate_pairs(dihedral_hashes(images))
    assert pairs.tolist() == [[1, 4]] and distance.tolist() == [0]


@needs_pcam
def test_real_patches_reencoded_and_turned_are_found():
    from training.samples import decode_image

    originals = np.stack([decode_image(p) for p in _pcam_paths(200, seed=1)])
    reference = dihedral_hashes(originals)
    for quality, (turns, flip) in [(95, (1, False)), (75, (2, True)), (60, (3, False))]:
        changed = np.rot90(_reencode(originals, quality), turns, axes=(1, 2))
        changed = np.ascontiguousarray(changed[:, :, ::-1] if flip else changed)
        pairs, distance = near_duplicate_pairs(dihedral_hashes(changed), reference)
        found = {tuple(p) for p in pairs.tolist()}
        blank = is_blank(reference)
        assert blank.sum() < 10  # blank background patches are flagged, never paired
        missed = [i for i in range(len(originals)) if (i, i) not in found and not blank[i]]
        # quality 60 is a harsh re-encoding: a rare patch moves further than the threshold
        assert len(missed) <= (0 if quality >= 75 else 4), (quality, missed)
        assert all(i == j for i, j in pairs.tolist()), "a re-encoded patch matched another patch"
        assert distance.max() <= DEFAULT_MAX_DISTANCE < HASH_BITS


@needs_pcam
def test_distinct_real_patches_are_not_near_duplicates():
    """False positives on 2,000 distinct real patches (1,999,000 pairs): none within the threshold."""
    started = time.perf_counter()
    hashes = perceptual_hashes(_pcam_paths(2000, seed=2), workers=2)
    pairs, _ = near_duplicate_pairs(hashes)
    assert time.perf_counter() - started < 45
    assert len(pairs) == 0, pairs[:5]
    # and the closest distinct pairs are far from it (margin), measured on a subset
    sub = hashes[:, :400]
    d = hamming(sub[:, :, None, :], sub[0][None, None, :, :]).min(0)
    closest = d[np.triu_indices(400, 1)].min()
    assert closest > 2 * DEFAULT_MAX_DISTANCE, closest


@needs_pcam
def test_find_near_duplicates_reports_a_planted_copy_across_splits():
    from training.samples import decode_image

    valid = np.stack([decode_image(p) for p in _pcam_paths(60, "valid", seed=3)])
    train = np.stack([decode_image(p) for p in _pcam_paths(300, "train", seed=3)])
    leaked = int(np.flatnonzero(~is_blank(dihedral_hashes(valid)))[5])
    train[17] = np.ascontiguousarray(np.rot90(_reencode(valid[leaked : leaked + 1], 80)[0])[:, ::-1])
    found = find_near_duplicates(valid, train, names=("valid", "train"))
    assert found.pairs.tolist() == [[leaked, 17]]
    assert found.line().startswith("near-duplicates between valid (60) and train (300): 1 pairs")
    assert found.to_dict()["pairs"] == 1


def test_blank_patches_are_flagged_and_never_paired():
    rows = np.linspace(225, 235, 32)[:, None, None] * np.ones((1, 32, 3))
    blank = np.stack([rows, rows[::-1], rows + 2]).astype(np.uint8)  # white background, soft lighting
    tissue = np.random.default_rng(4).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    hashes = dihedral_hashes(np.concatenate([blank, tissue, tissue[:1]]))
    assert is_blank(hashes).tolist() == [True, True, True, False, False, False]
    pairs, _ = near_duplicate_pairs(hashes)
    assert pairs.tolist() == [[3, 5]]  # the tissue copy, not the look-alike blanks
