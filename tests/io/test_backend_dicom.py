"""The wsidicom back-end: a real SVS made DICOM by wsidicomizer, read back and compared with the source.

CMU-1-Small-Region.svs is converted in the test (about 2 s) through wsidicomizer's
OpenSlide source with lossless JPEG (Process 14) frames, so the DICOM holds
exactly the pixels the source decodes to: level 0 must equal the tifffile
back-end's read of the SVS pixel for pixel.  wsidicomizer adds the coarser
levels it computes itself (``add_missing_levels``); those are checked for
shape and against a mean of the source, not for identity.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import shared_file

from napari_histo.cli.main import cli
from napari_histo.errors import InvalidParameterError, MissingDependencyError
from napari_histo.io import open_slide

pytest.importorskip("openslide", reason="the DICOM test slide is made through OpenSlide")
pytest.importorskip("wsidicomizer", reason="wsidicomizer (in the test extra) makes the DICOM test slide")


def assert_same_random_regions(slide, ref, rng, count: int, max_side: int) -> None:
    """``count`` random level-0 regions up to ``max_side`` px read identically from both slides."""
    rows, cols = ref.dimensions
    for _ in range(count):
        h, w = (int(n) for n in rng.integers(1, max_side + 1, 2))
        r, c = int(rng.integers(0, rows - h + 1)), int(rng.integers(0, cols - w + 1))
        want = ref.read_region((r, c), 0, (h, w))
        np.testing.assert_array_equal(slide.read_region((r, c), 0, (h, w)), want)


@pytest.fixture(scope="module")
def dicom_folder(tmp_path_factory):
    source = shared_file("wsi", "CMU-1-Small-Region.svs")
    out = tmp_path_factory.mktemp("dicom") / "CMU-1-Small-Region"
    out.mkdir()
    with warnings.catch_warnings():  # wsidicomizer and pydicom deprecations, not ours
        warnings.simplefilter("ignore")
        from wsidicom.codec.settings import JpegLosslessSettings
        from wsidicomizer import WsiDicomizer
        from wsidicomizer.wsidicomizer import SourceIdentifier

        WsiDicomizer.convert(
            source,
            out,
            tile_size=240,
            workers=1,
            add_missing_levels=True,
            preferred_source=SourceIdentifier.OPENSLIDE,
            encoding=JpegLosslessSettings(),
        )
    return out


def test_dicom_folder_reads_back_the_source_pixels(dicom_folder):
    source = shared_file("wsi", "CMU-1-Small-Region.svs")
    rng = np.random.default_rng(14)
    with open_slide(source) as ref, open_slide(dicom_folder) as dcm:
        assert dcm.backend == "wsidicom" and dcm.format == "dicom"
        assert dcm.dimensions == ref.dimensions
        assert dcm.mpp == pytest.approx(ref.mpp)
        assert dcm.level_info[0].tile_shape == (240, 240)
        assert_same_random_regions(dcm, ref, rng, 100, 160)
        rows = ref.dimensions[0]
        # the whole level through the lazy array napari shows
        np.testing.assert_array_equal(np.asarray(dcm.levels[0]), np.asarray(ref.levels[0]))
        # the coarser levels wsidicomizer computed: halves of level 0, close to a 2x2 mean of it
        assert dcm.level_count >= 3
        for level in range(1, dcm.level_count):
            info = dcm.level_info[level]
            assert info.shape[0] in (rows // 2**level, math.ceil(rows / 2**level))
            assert info.downsample == pytest.approx(2**level, rel=0.01)
        small = dcm.read_region((0, 0), 1, (200, 200)).astype(float)
        mean = ref.read_region((0, 0), 0, (400, 400)).reshape(200, 2, 200, 2, 3).mean(axis=(1, 3))
        assert np.abs(small - mean).mean() < 3
        # label and overview (macro) images come through with the source's sizes
        assert set(dcm.associated_names) >= {"label", "macro"}
        for name in ("label", "macro"):
            assert dcm.associated_image(name).shape[:2] == ref.associated_image(name).shape[:2]
            assert dcm.info()["associated_images"][name] == list(dcm.associated_image(name).shape)


def test_one_dcm_file_opens_its_folder_and_backend_can_be_forced(dicom_folder):
    one = sorted(dicom_folder.glob("*.dcm"))[0]
    with open_slide(one) as slide, open_slide(dicom_folder, backend="wsidicom") as forced:
        assert slide.backend == forced.backend == "wsidicom"
        assert slide.dimensions == forced.dimensions
        assert slide.source == str(one) and slide.info()["path"] == str(one)


def test_histo_info_on_a_dicom_folder(dicom_folder):
    result = CliRunner().invoke(cli, ["info", str(dicom_folder)])
    assert result.exit_code == 0, result.output
    assert "dicom (read by wsidicom)" in result.output and "2,220 x 2,967" in result.output


def test_an_empty_folder_is_still_not_a_slide(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"is a directory.*napari-histo\[dicom\]"):
        open_slide(tmp_path)


def test_dicomweb_urls_must_name_a_series():
    with pytest.raises(InvalidParameterError, match="studies/<StudyInstanceUID>/series"):
        open_slide("https://127.0.0.1:9/dicomweb/studies", backend="wsidicom")


def test_dicom_without_wsidicom_names_the_extra(dicom_folder, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "wsidicom", None)
    with pytest.raises(MissingDependencyError, match=r"napari-histo\[dicom\]"):
        open_slide(dicom_folder)


def test_napari_reader_reads_a_dicom_folder(dicom_folder):
    pytest.importorskip("napari")
    from napari_histo._napari.reader import get_slide_reader

    reader = get_slide_reader(str(dicom_folder))
    assert reader is not None
    [(data, kwargs, kind)] = reader(str(dicom_folder))
    assert kind == "image" and kwargs["multiscale"] and len(data) >= 3
    assert kwargs["scale"] == (pytest.approx(0.499), pytest.approx(0.499))
    assert kwargs["metadata"]["napari_histo"]["info"]["backend"] == "wsidicom"
    with open_slide(shared_file("wsi", "CMU-1-Small-Region.svs")) as ref:
        np.testing.assert_array_equal(np.asarray(data[0][:256, :256]), ref.read_region((0, 0), 0, (256, 256)))


# ---------------------------------------------------------------- DICOMweb, served by a local Orthanc
#
# Orthanc (Debian packages orthanc + orthanc-dicomweb; scripts/test installs them) serves the converted
# series on 127.0.0.1 only; nothing outside this machine is reached.


@pytest.fixture(scope="module")
def dicomweb_series(dicom_folder, tmp_path_factory):
    import sys

    pytest.importorskip("requests")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from _orthanc import dicomweb_series as serve
    from _orthanc import orthanc_available

    if not orthanc_available():
        pytest.skip(
            "Orthanc with its DICOMweb plugin is not installed (apt install orthanc orthanc-dicomweb)"
        )
    with serve(dicom_folder, tmp_path_factory.mktemp("orthanc")) as url:
        yield url


def test_dicomweb_series_reads_the_pixels_of_the_folder(dicom_folder, dicomweb_series):
    from napari_histo.io._dicom_parts import parse_dicomweb_url, stored_transfer_syntax

    # frames are asked for as stored (lossless JPEG here): the server transcodes nothing
    assert stored_transfer_syntax(*parse_dicomweb_url(dicomweb_series)) == "1.2.840.10008.1.2.4.57"
    rng = np.random.default_rng(15)
    with open_slide(dicomweb_series) as web, open_slide(dicom_folder) as local:
        assert web.backend == "wsidicom" and web.format == "dicom"
        assert web.dimensions == local.dimensions and web.level_count == local.level_count
        assert web.mpp == pytest.approx(local.mpp)
        assert set(web.associated_names) >= {"label", "macro"}
        assert_same_random_regions(web, local, rng, 30, 299)
        for level in range(1, web.level_count):  # every coarser level, whole, through the lazy arrays
            np.testing.assert_array_equal(np.asarray(web.levels[level]), np.asarray(local.levels[level]))


def test_histo_info_tiles_and_predict_on_a_dicomweb_url(dicomweb_series, tmp_path):
    series_uid = dicomweb_series.rsplit("/", 1)[-1]
    name = series_uid.replace(".", "_")  # outputs are named up to a slide's first dot
    result = CliRunner().invoke(cli, ["info", dicomweb_series])
    assert result.exit_code == 0, result.output
    assert "dicom (read by wsidicom)" in result.output and "2,220 x 2,967" in result.output
    out = tmp_path / "tiles"
    result = CliRunner().invoke(
        cli, ["tiles", dicomweb_series, "--out", str(out), "--mpp", "2", "--tile-px", "128"]
    )
    assert result.exit_code == 0, result.output
    assert len(list((out / "tissue").glob(f"{name}_x*_y*.png"))) > 3
    result = CliRunner().invoke(
        cli, ["predict", dicomweb_series, "--model", "pcam-mobilenetv2", "--out", str(tmp_path / "p")]
    )
    assert result.exit_code == 0, result.output
    assert f"{name}: " in result.output and (tmp_path / "p" / f"{name}.geojson").is_file()


def test_histo_tiles_and_predict_on_a_dicom_folder(dicom_folder, tmp_path):
    result = CliRunner().invoke(
        cli, ["tiles", str(dicom_folder), "--out", str(tmp_path / "t"), "--mpp", "2", "--tile-px", "128"]
    )
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "t" / "tissue").glob("CMU-1-Small-Region_x*_y*.png"))) > 3
    result = CliRunner().invoke(
        cli, ["predict", str(dicom_folder), "--model", "pcam-mobilenetv2", "--out", str(tmp_path / "p")]
    )
    assert result.exit_code == 0, result.output
    summary = (tmp_path / "p" / "CMU-1-Small-Region.summary.json").read_text()
    assert '"n_tiles"' in summary


def test_napari_offers_its_reader_for_a_dicomweb_url_and_reads_it(dicomweb_series, dicom_folder):
    pytest.importorskip("napari")
    from npe2 import PluginManager

    from napari_histo._napari.reader import get_slide_reader

    manager = PluginManager.instance()
    manager.discover()
    offered = [reader.command for reader in manager.iter_compatible_readers([dicomweb_series])]
    assert "napari-histo.get_slide_reader" in offered  # napari.yaml's pattern for DICOMweb series
    [(data, kwargs, kind)] = get_slide_reader(dicomweb_series)(dicomweb_series)
    assert kind == "image" and kwargs["multiscale"] and kwargs["scale"] == (pytest.approx(0.499),) * 2
    with open_slide(dicom_folder) as local:
        np.testing.assert_array_equal(np.asarray(data[-1]), np.asarray(local.levels[-1]))


def test_cohort_manifest_mixes_a_dicomweb_url_a_dicom_folder_and_a_file(
    dicomweb_series, dicom_folder, tmp_path
):
    manifest = tmp_path / "cohort.csv"
    svs = shared_file("wsi", "tcga-cr-7395-01a-01-ts1.svs")
    manifest.write_text(f"slide,label\n{dicomweb_series},a\n{dicom_folder},b\n{svs},c\n")
    result = CliRunner().invoke(cli, ["cohort", "info", str(manifest), "--out", str(tmp_path / "info")])
    assert result.exit_code == 0, result.output
    name = dicomweb_series.rsplit("/", 1)[-1].replace(".", "_")
    records = {p.name: json.loads(p.read_text()) for p in (tmp_path / "info").glob("*.info.json")}
    assert set(records) == {
        f"{name}.info.json",
        "CMU-1-Small-Region.info.json",
        "tcga-cr-7395-01a-01-ts1.info.json",
    }
    assert records[f"{name}.info.json"]["info"]["backend"] == "wsidicom"
    assert records["CMU-1-Small-Region.info.json"]["info"]["backend"] == "wsidicom"


def test_dicomweb_credentials_come_from_the_environment(dicom_folder, tmp_path, monkeypatch):
    """A server that asks for credentials: refused in one line naming the variables, read with them."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from _orthanc import dicomweb_series as serve
    from _orthanc import orthanc_available

    from napari_histo.errors import CorruptSlideError

    if not orthanc_available():
        pytest.skip("Orthanc and its DICOMweb plugin are not installed: apt install orthanc orthanc-dicomweb")
    for name in ("HISTO_DICOMWEB_TOKEN", "HISTO_DICOMWEB_USER", "HISTO_DICOMWEB_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    with serve(dicom_folder, tmp_path / "orthanc", users={"alice": "s3cret"}) as url:
        with pytest.raises(CorruptSlideError, match=r"refused the request \(401.*HISTO_DICOMWEB_USER"):
            open_slide(url)
        monkeypatch.setenv("HISTO_DICOMWEB_USER", "alice")
        monkeypatch.setenv("HISTO_DICOMWEB_PASSWORD", "wrong")
        with pytest.raises(CorruptSlideError, match=r"\(401"):
            open_slide(url)
        monkeypatch.setenv("HISTO_DICOMWEB_PASSWORD", "s3cret")
        with open_slide(url) as web, open_slide(dicom_folder) as local:
            np.testing.assert_array_equal(np.asarray(web.levels[-1]), np.asarray(local.levels[-1]))
        result = CliRunner().invoke(cli, ["info", url])
        assert result.exit_code == 0 and "s3cret" not in result.output


def test_a_dicomweb_token_is_sent_as_a_bearer_header(monkeypatch):
    from napari_histo.io._dicom_parts import dicomweb_session

    monkeypatch.delenv("HISTO_DICOMWEB_USER", raising=False)
    monkeypatch.delenv("HISTO_DICOMWEB_TOKEN", raising=False)
    assert dicomweb_session() is None
    monkeypatch.setenv("HISTO_DICOMWEB_TOKEN", "abc.def")
    assert dicomweb_session().headers["Authorization"] == "Bearer abc.def"
