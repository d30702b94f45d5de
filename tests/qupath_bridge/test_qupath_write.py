"""write_geojson is atomic: readers see the old file or the new one, never half of one."""

from __future__ import annotations

import os

import pytest
import shapely

import qupath_bridge as qb
from qupath_bridge import _files


def _objects(n: int = 3) -> list[qb.PathObject]:
    return [qb.PathObject(shapely.box(i, i, i + 1, i + 1), qb.ObjectType.DETECTION) for i in range(n)]


def test_failed_replace_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = qb.write_geojson(_objects(1), tmp_path / "results.geojson")
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(_files.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        qb.write_geojson(_objects(5), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.geojson"]


def test_written_file_has_normal_permissions_and_replaces_the_old_one(tmp_path):
    path = qb.write_geojson(_objects(1), tmp_path / "sub" / "results.geojson")
    qb.write_geojson(_objects(4), path)
    assert len(qb.read_geojson(path)) == 4
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in path.parent.iterdir()) == ["results.geojson"]


@pytest.mark.parametrize("name", ["r.geojson", "r.json", "r.geojson.gz", "r.geojson.zip", "r.zip"])
def test_every_container_reads_back(tmp_path, name):
    path = qb.write_geojson(_objects(), tmp_path / name, pretty=True)
    back = qb.read_geojson(path)
    assert [o.geometry.bounds for o in back] == [o.geometry.bounds for o in _objects()]
    assert all(o.object_type is qb.ObjectType.DETECTION for o in back)


def test_measurements_can_be_left_out_and_layout_is_checked(tmp_path):
    obj = qb.PathObject(shapely.box(0, 0, 1, 1), measurements={"a": 1.0})
    props = qb.to_geojson([obj], include_measurements=False)["features"][0]["properties"]
    assert "measurements" not in props
    with pytest.raises(qb.GeoJSONError, match=r"layout must be one of \('0.4', '0.3'\), got '0.5'"):
        qb.write_geojson([obj], tmp_path / "x.geojson", layout="0.5")
