"""Read and write 100,000 QuPath detection polygons: qupath_bridge vs plain ``json`` + shapely.

The objects look like a cell-detection export: a 16-vertex polygon per nucleus
(2-decimal coordinates), a class with colour, a UUID and 6 measurements of which some
are NaN.  In the same run and on the same objects:

* ``qupath_bridge.write_geojson`` / ``read_geojson`` (QuPath 0.4+ layout, validity
  checked and repaired, NaN as QuPath's strings, atomic write);
* the baseline most scripts use: ``shapely.geometry.mapping`` + ``json.dump`` to write,
  ``json.load`` + ``shapely.geometry.shape`` per feature to read (no validity check, no
  QuPath properties parsed, NaN written as bare ``NaN`` — invalid JSON for QuPath ≥ 0.5).

    python benchmarks/bench_geojson.py [--n 100000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import shapely
import shapely.geometry

import qupath_bridge as qb


def make_objects(n: int, seed: int = 0) -> list[qb.PathObject]:
    """``n`` cell-like detections on a 100,000 px square slide."""
    rng = np.random.default_rng(seed)
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    centres = rng.uniform(0, 100_000, (n, 2))
    radii = rng.uniform(4, 9, (n, 1)) * rng.uniform(0.85, 1.15, (n, 16))
    ring = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=-1) + centres[:, None, :]
    ring = np.round(np.concatenate([ring, ring[:, :1]], axis=1), 2)
    polygons = shapely.polygons(ring)
    classes = [qb.Classification(("Tumor",), (200, 0, 0)), qb.Classification(("Stroma",), (150, 200, 150))]
    classes.append(qb.Classification(("Immune cells",), (160, 90, 160)))
    values = rng.normal(size=(n, 6))
    values[rng.random(n) < 0.05, 5] = np.nan
    names = ["Area µm^2", "Perimeter µm", "Circularity", "Hematoxylin OD mean", "Eosin OD mean", "DAB OD max"]
    return [
        qb.PathObject(
            polygons[i],
            qb.ObjectType.DETECTION,
            id=str(uuid.UUID(int=int(rng.integers(0, 2**62)))),
            classification=classes[i % 3],
            measurements=dict(zip(names, values[i].tolist())),
        )
        for i in range(n)
    ]


def baseline_write(objects: list[qb.PathObject], path: Path) -> None:
    features = [
        {
            "type": "Feature",
            "id": o.id,
            "geometry": shapely.geometry.mapping(o.geometry),
            "properties": {
                "objectType": o.object_type.value,
                "classification": {"name": o.class_name, "color": list(o.classification.color)},
                "measurements": o.measurements,
            },
        }
        for o in objects
    ]
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"type": "FeatureCollection", "features": features}, fh)


def baseline_read(path: Path) -> list:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    return [(shapely.geometry.shape(f["geometry"]), f["properties"]) for f in data["features"]]


def timed(fn, repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="number of detection polygons")
    parser.add_argument("--repeat", type=int, default=1, help="best of this many runs per step")
    args = parser.parse_args()

    start = time.perf_counter()
    objects = make_objects(args.n)
    made = time.perf_counter() - start
    print(f"made {len(objects):,} detections (16-gons, 6 measurements) in {made:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        ours, theirs = Path(tmp) / "ours.geojson", Path(tmp) / "baseline.geojson"
        write_ours = timed(lambda: qb.write_geojson(objects, ours), args.repeat)
        write_theirs = timed(lambda: baseline_write(objects, theirs), args.repeat)
        read_ours = timed(lambda: qb.read_geojson(ours), args.repeat)
        read_theirs = timed(lambda: baseline_read(theirs), args.repeat)
        back = qb.read_geojson(ours)
        assert len(back) == len(objects)
        assert back[7].measurements.keys() == objects[7].measurements.keys()
        rows = [
            ("qupath_bridge.write_geojson", write_ours, ours.stat().st_size),
            ("json.dump + shapely mapping", write_theirs, theirs.stat().st_size),
            ("qupath_bridge.read_geojson", read_ours, None),
            ("json.load + shapely shape", read_theirs, None),
        ]
    print(f"\n{'step':30s} {'seconds':>8s} {'features/s':>11s} {'file MB':>8s}")
    for label, seconds, size in rows:
        mb = f"{size / 1e6:8.1f}" if size else ""
        print(f"{label:30s} {seconds:8.2f} {args.n / seconds:11,.0f} {mb}")
    print(f"\nours / baseline: write {write_ours / write_theirs:.2f}x, read {read_ours / read_theirs:.2f}x")
    print("(ours also checks every polygon's validity, parses every QuPath property and writes strict JSON)")


if __name__ == "__main__":
    main()
