"""Near-duplicate patches across splits: a perceptual hash that flips, rotations and re-encoding keep.

:func:`training.data.dedup` drops byte-identical patches (md5).  A patch saved
again as JPEG at another quality, or flipped or turned, has another md5 but is
the same tissue; in a validation split it flatters the model as much as an
exact copy does.  :func:`perceptual_hashes` makes a 63-bit DCT hash per patch:

* grayscale, area-averaged to 32 x 32 px, 2-D DCT-II (orthonormal);
* the 16 x 16 lowest frequencies but the mean (DC) term, one bit per coefficient: its sign
  (255 bits in four 64-bit words; the first word holds the 8 x 8 lowest, for a quick first pass).

A flip changes the sign of the odd frequencies along its axis and a transpose
swaps the axes, so the hashes of all 8 rotations/flips of a patch (the dihedral
group) follow exactly from one DCT.  :func:`near_duplicate_pairs` calls two patches near
duplicates when some rotation/flip of one is within ``max_distance`` bits (Hamming)
of the other; the search is vectorised (XOR + popcount over blocks of hashes) in two
passes (coarse word, then all bits).  Patches whose canonical hashes (the smallest
of the 8) are identical are counted apart, by bucketing on the hash.  Blank background
patches (hardly any texture) hash by their lighting alone; they are flagged and never paired.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "DEFAULT_MAX_DISTANCE",
    "HASH_BITS",
    "NearDuplicates",
    "canonical_hashes",
    "dihedral_hashes",
    "find_near_duplicates",
    "hamming",
    "is_blank",
    "near_duplicate_pairs",
    "perceptual_hashes",
]

HASH_PX = 32
BLOCK = 16  # the 16 x 16 lowest frequencies of the 32 x 32 image ...
COARSE = 8  # ... of which the 8 x 8 lowest (one 64-bit word) make a quick first pass
HASH_BITS = BLOCK * BLOCK - 1
WORDS = 4
#: bits (of 255) two hashes may differ by and still be near duplicates; measured on PCam patches
#: (tests/training/test_near_duplicates.py): JPEG re-encoding at quality 75 then a flip or rotation
#: differs by at most 10 bits (quality 60: 4 on average, 99th percentile 13); distinct tissue patches
#: by 80 or more (the closest distinct pairs, 15-32 bits, are blank background: see ``BLANK_STD``)
DEFAULT_MAX_DISTANCE = 16
#: the quick pass keeps pairs whose coarse (63-bit) hashes differ by at most this many bits
COARSE_DISTANCE = 20
#: a patch whose 32 x 32 grayscale varies less than this (std of the hashed frequencies, in grey
#: levels) is blank background: its hash bits follow the lighting, not tissue, so blank patches are
#: counted apart and never paired (on PCam about 1 % of patches, tissue patches 8-60)
BLANK_STD = 8.0
#: bit 63 of the first word (no coefficient there) marks a blank patch
_BLANK_BIT = np.uint64(1) << np.uint64(63)


def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights that average each output cell's share of the input (exact area resize)."""
    edges = np.linspace(0, n_in, n_out + 1)
    lo, hi = edges[:-1, None], edges[1:, None]
    pixel = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, pixel + 1) - np.maximum(lo, pixel), 0, None)
    return overlap / overlap.sum(1, keepdims=True)


def _dct_matrix(n: int) -> np.ndarray:
    k, x = np.arange(n)[:, None], np.arange(n)[None, :]
    d = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2 / n)
    d[0] /= np.sqrt(2)
    return d


def _low_frequencies(images: np.ndarray) -> np.ndarray:
    """float32 (n, 16, 16) lowest DCT coefficients of the 32 x 32 grayscale of uint8 (n, h, w, 3) images."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] < 3:
        raise ValueError(f"expected RGB patches (n, rows, cols, 3), got shape {images.shape}")
    gray = images[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    dct = _dct_matrix(HASH_PX)[:BLOCK]
    left = (dct @ _area_matrix(images.shape[1], HASH_PX)).astype(np.float32)
    right = (dct @ _area_matrix(images.shape[2], HASH_PX)).astype(np.float32)
    return np.einsum("ur,nrc,vc->nuv", left, gray, right, optimize=True)


def _bit_order() -> np.ndarray:
    """Flat indices of the 16 x 16 block in hash-bit order: the 8 x 8 AC terms, then the rest (no DC)."""
    u, v = np.divmod(np.arange(BLOCK * BLOCK), BLOCK)
    coarse = (u < COARSE) & (v < COARSE) & ((u + v) > 0)
    rest = ~((u < COARSE) & (v < COARSE))
    return np.concatenate([np.flatnonzero(coarse), np.flatnonzero(rest)])


_ORDER = _bit_order()
_SIGN = (-1.0) ** np.arange(BLOCK)


def _pack(coefficients: np.ndarray, blank: np.ndarray) -> np.ndarray:
    """uint64 (n, 4): bit i = coefficient _ORDER[i] > 0; word 0 holds the 63 coarse bits, bit 63 = blank."""
    bits = coefficients.reshape(len(coefficients), -1)[:, _ORDER] > 0
    n_coarse = COARSE * COARSE - 1
    padded = np.zeros((len(bits), WORDS * 64), bool)
    padded[:, :n_coarse] = bits[:, :n_coarse]
    padded[:, n_coarse] = blank
    padded[:, 64 : 64 + bits.shape[1] - n_coarse] = bits[:, n_coarse:]
    return np.packbits(padded, axis=1, bitorder="little").view("<u8").astype(np.uint64)


def dihedral_hashes(images: np.ndarray) -> np.ndarray:
    """uint64 (8, n, 4): the hash of each of the 8 rotations/flips of every patch (row 0: as it is)."""
    c = _low_frequencies(images)
    ac_energy = (c.astype(np.float64) ** 2).sum((1, 2)) - c[:, 0, 0].astype(np.float64) ** 2
    blank = np.sqrt(np.maximum(ac_energy, 0)) / HASH_PX < BLANK_STD
    flip_cols, flip_rows = _SIGN[None, None, :], _SIGN[None, :, None]
    variants = []
    for block in (c, c.transpose(0, 2, 1)):
        variants += [block, block * flip_cols, block * flip_rows, block * flip_rows * flip_cols]
    return np.stack([_pack(v, blank) for v in variants])


def is_blank(variants: np.ndarray) -> np.ndarray:
    """bool (n,): patches too uniform to hash (blank background, see ``BLANK_STD``)."""
    return (np.asarray(variants)[0, :, 0] & _BLANK_BIT) != 0


def canonical_hashes(variants: np.ndarray) -> np.ndarray:
    """uint64 (n, 4): the (lexicographically) smallest of the 8 hashes, one for all rotations/flips."""
    variants = np.asarray(variants)
    order = np.lexsort(variants.transpose(2, 0, 1)[::-1], axis=0)[0]  # per patch: the smallest variant
    return variants[order, np.arange(variants.shape[1])]


def perceptual_hashes(
    images: np.ndarray | Sequence[str | Path], *, workers: int = 4, batch: int = 2048
) -> np.ndarray:
    """uint64 (8, n, 4) dihedral hashes of uint8 (n, h, w, 3) pixels or of image files (decoded in threads).

    Files of mixed sizes hash fine: each is resized to 32 x 32 on its own.
    """
    if isinstance(images, np.ndarray):
        return dihedral_hashes(images) if len(images) else np.zeros((8, 0, WORDS), np.uint64)
    from training.samples import decode_image

    paths = list(images)
    out = []
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for start in range(0, len(paths), batch):
            pixels = list(pool.map(decode_image, paths[start : start + batch]))
            if len({p.shape for p in pixels}) == 1:
                out.append(dihedral_hashes(np.stack(pixels)))
            else:
                out.append(np.concatenate([dihedral_hashes(p[None]) for p in pixels], axis=1))
    return np.concatenate(out, axis=1) if out else np.zeros((8, 0, WORDS), np.uint64)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bits that differ between uint64 hashes (broadcasting; sums over the last axis, the words)."""
    return np.bitwise_count(np.bitwise_xor(a, b)).sum(-1, dtype=np.int64)


def near_duplicate_pairs(
    variants_a: np.ndarray, variants_b: np.ndarray | None = None, *,
    max_distance: int = DEFAULT_MAX_DISTANCE, block: int = 32,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(pairs (k, 2) int64 [index in a, index in b], distance (k,)) of near duplicates.

    ``variants_*`` are :func:`perceptual_hashes` outputs (8, n, 4).  The distance is the
    least Hamming distance between any rotation/flip of a patch of ``a`` and a patch of
    ``b``.  Without ``variants_b``, pairs within ``a`` (i < j).  A first pass compares the
    coarse words only (XOR + popcount, blocks of ``block`` patches against all of ``b``);
    the pairs it keeps are measured on all 255 bits.  Blank patches (:func:`is_blank`) are
    never paired.
    """
    variants_a = np.asarray(variants_a, dtype=np.uint64)
    within = variants_b is None
    plain_b = variants_a[0] if within else np.asarray(variants_b, dtype=np.uint64)[0]
    coarse_b = plain_b[:, 0]
    coarse_limit = max(COARSE_DISTANCE, max_distance // 4)
    found_a, found_b = [], []
    for start in range(0, variants_a.shape[1], block):
        chunk = variants_a[:, start : start + block, 0]
        coarse = np.bitwise_count(chunk[:, :, None] ^ coarse_b[None, None, :]).min(0)
        rows, cols = np.nonzero(coarse <= coarse_limit)
        rows = rows + start
        keep = ((chunk[0, rows - start] | coarse_b[cols]) & _BLANK_BIT) == 0
        rows, cols = rows[keep], cols[keep]
        if within:
            keep = rows < cols
            rows, cols = rows[keep], cols[keep]
        found_a.append(rows)
        found_b.append(cols)
    rows = np.concatenate(found_a) if found_a else np.zeros(0, np.int64)
    cols = np.concatenate(found_b) if found_b else np.zeros(0, np.int64)
    distance = np.zeros(0, np.int64)
    if len(rows):
        distance = np.concatenate([
            hamming(variants_a[:, rows[s : s + 65536]], plain_b[None, cols[s : s + 65536]]).min(0)
            for s in range(0, len(rows), 65536)
        ])  # fmt: skip
    keep = distance <= max_distance
    pairs = np.stack([rows[keep], cols[keep]], axis=1).astype(np.int64).reshape(-1, 2)
    return pairs, distance[keep].astype(np.int64)


@dataclass(frozen=True)
class NearDuplicates:
    """Near-duplicate pairs between two named sets of patches, and the line that reports them."""

    name_a: str
    name_b: str
    n_a: int
    n_b: int
    pairs: np.ndarray  # (k, 2): index in a, index in b
    distance: np.ndarray  # (k,)
    identical_hashes: int
    max_distance: int
    seconds: float
    blank: tuple[int, int] = (0, 0)  # blank patches of a and b, never paired

    @property
    def patches_a(self) -> int:
        """Patches of ``a`` with at least one near duplicate in ``b``."""
        return int(len(np.unique(self.pairs[:, 0])))

    @property
    def patches_b(self) -> int:
        return int(len(np.unique(self.pairs[:, 1])))

    def line(self) -> str:
        return (
            f"near-duplicates between {self.name_a} ({self.n_a:,}) and {self.name_b} ({self.n_b:,}): "
            f"{len(self.pairs):,} pairs ({self.patches_a:,} {self.name_a} and {self.patches_b:,} "
            f"{self.name_b} patches; {self.identical_hashes:,} with identical hashes) within "
            f"{self.max_distance} of {HASH_BITS} bits of a rotation/flip-invariant DCT hash; blank "
            f"background patches not compared: {self.blank[0]:,} and {self.blank[1]:,} [{self.seconds:.1f} s]"
        )

    def to_dict(self, limit: int = 50) -> dict[str, object]:
        return {
            "between": [self.name_a, self.name_b],
            "n": [self.n_a, self.n_b],
            "pairs": int(len(self.pairs)),
            "patches": [self.patches_a, self.patches_b],
            "identical_hashes": self.identical_hashes,
            "blank_not_compared": list(self.blank),
            "max_distance_bits": self.max_distance,
            "hash_bits": HASH_BITS,
            "first_pairs": [[int(i), int(j), int(d)] for (i, j), d in zip(self.pairs[:limit], self.distance)],
        }


def find_near_duplicates(
    a: np.ndarray | Sequence[str | Path], b: np.ndarray | Sequence[str | Path], *,
    names: tuple[str, str] = ("a", "b"), max_distance: int = DEFAULT_MAX_DISTANCE, workers: int = 4,
) -> NearDuplicates:  # fmt: skip
    """Hash both sets (pixels or files) and find their near-duplicate pairs; timed."""
    started = time.perf_counter()
    ha, hb = perceptual_hashes(a, workers=workers), perceptual_hashes(b, workers=workers)
    pairs, distance = near_duplicate_pairs(ha, hb, max_distance=max_distance)
    canon_a, canon_b = (np.ascontiguousarray(canonical_hashes(h)).view("V32").ravel() for h in (ha, hb))
    blank_a, blank_b = is_blank(ha), is_blank(hb)
    same = np.isin(canon_a[~blank_a], canon_b[~blank_b]).sum()  # bucket pass: identical hashes
    return NearDuplicates(names[0], names[1], ha.shape[1], hb.shape[1], pairs, distance, int(same),
                          max_distance, time.perf_counter() - started,
                          (int(blank_a.sum()), int(blank_b.sum())))  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m training.dedup DATA_ROOT [SPLIT_A SPLIT_B] [--max-distance N]`` (labels.csv or folders)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m training.dedup", description=main.__doc__)
    parser.add_argument("root", type=Path)
    parser.add_argument("splits", nargs="*", default=["train", "valid"])
    parser.add_argument("--max-distance", type=int, default=DEFAULT_MAX_DISTANCE)
    args = parser.parse_args(argv)
    from training.data import load_split_samples

    first, second = [*args.splits, "valid"][:2]
    a = load_split_samples(args.root, first)
    b = load_split_samples(args.root, second)
    found = find_near_duplicates(a.paths, b.paths, names=(first, second), max_distance=args.max_distance)
    print(found.line())


if __name__ == "__main__":
    main()
