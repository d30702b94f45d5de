"""OME-Zarr output: ``histo predict --ome-zarr`` on a real slide, opened with ``ome-zarr``'s own reader."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import zarr
from click.testing import CliRunner
from conftest import shared_file

from napari_histo.io.ome_zarr import NGFF_VERSIONS, write_ome_zarr

ome_reader = pytest.importorskip("ome_zarr.reader")
ome_io = pytest.importorskip("ome_zarr.io")


def read_ome(path):
    """The nodes ``ome-zarr``'s reader finds (image first, then its labels), as napari-ome-zarr reads them."""
    location = ome_io.parse_url(str(path))
    assert location is not None, f"ome-zarr does not recognise {path}"
    nodes = list(ome_reader.Reader(location)())
    image = nodes[0]
    labels = [n for n in nodes if n.metadata.get("name") == "classes"]
    return location, image, labels[0] if labels else None


def scales(node):
    return [t[0]["scale"] for t in node.metadata["coordinateTransformations"]]


@pytest.fixture(scope="module")
def predicted(tmp_path_factory):
    """The shipped classifier run on CMU-1-Small-Region with --ome-zarr (once for the module)."""
    pytest.importorskip("torch")
    from napari_histo.cli.main import cli

    slide = shared_file("wsi", "CMU-1-Small-Region.svs")
    out = tmp_path_factory.mktemp("ome") / "out"
    args = ["predict", str(slide), "--model", "pcam-mobilenetv2", "--out", str(out), "--device", "cpu",
            "--batch-size", "32", "--workers", "2", "--ome-zarr"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return out, "CMU-1-Small-Region"


def test_predict_writes_ome_zarr_beside_the_store(predicted):
    out, stem = predicted
    ome = out / f"{stem}.ome.zarr"
    assert ome.is_dir() and (out / f"{stem}.zarr").is_dir()
    assert not list(out.glob("*.partial"))
    assert zarr.open_group(str(ome), mode="r").metadata.zarr_format == 2  # NGFF 0.4 is Zarr v2

    store = zarr.open_group(str(out / f"{stem}.zarr"), mode="r")
    grid, spec = store.attrs["grid"], store.attrs["spec"]
    location, image, labels = read_ome(ome)
    assert location.version == "0.4"

    # the image: class probabilities (c, y, x) in micrometres, one pixel per tile
    axes = image.metadata["axes"]
    assert [a["name"] for a in axes] == ["c", "y", "x"] and axes[1]["unit"] == "micrometer"
    assert image.metadata["channel_names"] == spec["class_names"] == ["normal", "tumour"]
    tile_um = grid["stride_px_level0"] * grid["slide_mpp"]
    assert tile_um == pytest.approx(spec["patch_size_pixels"] * spec["spacing_um_px"], rel=0.01)  # 96 µm
    assert scales(image)[0] == pytest.approx([1.0, tile_um, tile_um])
    level0 = np.asarray(image.data[0])
    np.testing.assert_array_equal(level0, np.asarray(store["probability_map"]))  # NaN where not predicted
    assert level0.dtype == np.float32 and np.isfinite(level0).any()

    # the labels: top class + 1 (0 = not predicted), with the model's colours and class names
    assert labels is not None
    class_map = np.asarray(store["class_map"])
    np.testing.assert_array_equal(np.asarray(labels.data[0]), np.where(class_map >= 0, class_map + 1, 0))
    assert scales(labels)[0] == pytest.approx([tile_um, tile_um])
    colors = labels.metadata["color"]
    for i, rgb in enumerate(spec["class_colors"]):
        assert colors[i + 1] == pytest.approx([v / 255 for v in rgb] + [1.0])
        assert labels.metadata["properties"][i + 1] == {"class": spec["class_names"][i]}


def test_a_later_run_adds_ome_zarr_to_finished_outputs(predicted, tmp_path):
    """--ome-zarr after a run without it makes NAME.ome.zarr from the finished store, predicting nothing."""
    from napari_histo.cli.main import cli

    out, stem = predicted
    ome = out / f"{stem}.ome.zarr"
    before = ome.stat().st_mtime_ns
    slide = shared_file("wsi", "CMU-1-Small-Region.svs")
    args = ["predict", str(slide), "--model", "pcam-mobilenetv2", "--out", str(out), "--device", "cpu",
            "--workers", "2", "--ome-zarr"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0 and "already done" in result.output
    assert ome.stat().st_mtime_ns == before  # up to date: kept
    shutil.rmtree(ome)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0 and "already done" in result.output
    _, image, labels = read_ome(ome)
    assert image.metadata["channel_names"] == ["normal", "tumour"] and labels is not None


def test_pyramid_levels_are_means_and_modes(tmp_path):
    rng = np.random.default_rng(1)
    probs = rng.random((3, 600, 410)).astype(np.float32)
    probs[:, :7, :9] = np.nan  # not predicted
    classes = rng.integers(-1, 3, (600, 410)).astype(np.int16)
    path = write_ome_zarr(tmp_path / "m.ome.zarr", probs, 0.5, channel_names=["a", "b", "c"],
                          labels=classes, label_names=["a", "b", "c"], chunk_px=128)  # fmt: skip
    _, image, labels = read_ome(path)
    assert [d.shape for d in image.data] == [(3, 600, 410), (3, 300, 205), (3, 150, 103)]
    assert [s[1] for s in scales(image)] == [0.5, 1.0, 2.0]
    level1 = np.asarray(image.data[1])
    np.testing.assert_allclose(level1[:, 10, 20], probs[:, 20:22, 40:42].mean(axis=(1, 2)), rtol=1e-6)
    assert np.isnan(level1[:, 1, 2]).all() and np.isfinite(level1[:, 1, 5]).all()
    # odd edge: the last column of level 2 averages the one column left
    np.testing.assert_allclose(
        np.asarray(image.data[2])[:, 0, 102], level1[:, 0:2, 204].mean(axis=1), rtol=1e-6
    )
    lab1 = np.asarray(labels.data[1])
    stored = np.where(classes >= 0, classes + 1, 0)
    block = stored[40:42, 60:62].ravel()
    values, counts = np.unique(block[block > 0], return_counts=True)
    expected = values[counts == counts.max()].min() if values.size else 0
    assert lab1[20, 30] == expected
    assert lab1.dtype == np.uint8 and set(np.unique(lab1)) <= {0, 1, 2, 3}


@pytest.mark.parametrize("version", sorted(NGFF_VERSIONS))
def test_versions_and_uint8_maps(tmp_path, version):
    probs = np.linspace(0, 1, 2 * 40 * 30, dtype=np.float32).reshape(2, 40, 30)
    as_u8 = np.rint(probs * 255).astype(np.uint8)
    path = write_ome_zarr(tmp_path / "u.ome.zarr", as_u8, 8.0, channel_names=["p", "q"],
                          channel_colors=[(255, 0, 0), (0, 0, 255)], version=version)  # fmt: skip
    location, image, labels = read_ome(path)
    assert location.version == version and labels is None
    assert zarr.open_group(str(path), mode="r").metadata.zarr_format == NGFF_VERSIONS[version]
    np.testing.assert_array_equal(np.asarray(image.data[0]), as_u8)
    attrs = dict(zarr.open_group(str(path), mode="r").attrs)
    omero = (attrs["ome"] if version == "0.5" else attrs)["omero"]
    assert [c["color"] for c in omero["channels"]] == ["FF0000", "0000FF"]
    assert omero["channels"][0]["window"]["end"] == 255


def test_atomic_and_checked(tmp_path):
    path = tmp_path / "x.ome.zarr"
    with pytest.raises(ValueError, match="channels"):
        write_ome_zarr(path, np.zeros((2, 4, 4), np.float32), 1.0, channel_names=["one"])
    with pytest.raises(ValueError, match="float32 or uint8"):
        write_ome_zarr(path, np.zeros((1, 4, 4), np.int32), 1.0, channel_names=["one"])
    with pytest.raises(ValueError, match="version"):
        write_ome_zarr(path, np.zeros((1, 4, 4), np.float32), 1.0, channel_names=["one"], version="0.3")
    assert not path.exists()
    write_ome_zarr(path, np.zeros((1, 4, 4), np.float32), 1.0, channel_names=["one"])
    write_ome_zarr(path, np.ones((1, 4, 4), np.float32), 1.0, channel_names=["one"])  # replaced whole
    assert np.asarray(zarr.open_group(str(path), mode="r")["0"]).min() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.ome.zarr"]
    meta = json.loads((path / ".zattrs").read_text())
    assert meta["multiscales"][0]["version"] == "0.4" and meta["multiscales"][0]["type"] == "mean"


def test_segmentation_mask_as_ome_zarr_at_the_models_mpp(tmp_path):
    """A U-Net's stitched mask: confidence image + labels at the model's µm/px, equal to NAME.mask.zarr."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("segmentation_models_pytorch")
    from napari_histo.cli.main import cli
    from napari_histo.models import ModelSpec, create_network
    from napari_histo.models.loading import save_model

    spec = ModelSpec(architecture="unet:resnet18", task="segmentation", num_classes=2,
                     class_names=("bg", "fg"), patch_size_pixels=64, spacing_um_px=4.0,
                     class_colors=((10, 20, 30), (200, 0, 100)))  # fmt: skip
    torch.manual_seed(0)
    model_dir = save_model(create_network(spec).eval(), spec, tmp_path / "unet")
    slide = shared_file("wsi", "CMU-1-Small-Region.svs")
    out = tmp_path / "out"
    args = ["predict", str(slide), "--model", str(model_dir), "--out", str(out), "--device", "cpu",
            "--batch-size", "16", "--workers", "2", "--ome-zarr"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    mask = zarr.open_group(str(out / "CMU-1-Small-Region.mask.zarr"), mode="r")
    _, image, labels = read_ome(out / "CMU-1-Small-Region.ome.zarr")
    assert image.metadata["channel_names"] == ["confidence"]
    assert scales(image)[0] == pytest.approx([1.0, 4.0, 4.0])
    assert scales(labels)[0] == pytest.approx([4.0, 4.0])
    np.testing.assert_array_equal(np.asarray(image.data[0])[0], np.asarray(mask["confidence"]))
    stored = np.asarray(mask["labels"])
    np.testing.assert_array_equal(np.asarray(labels.data[0]), np.where(stored >= 0, stored + 1, 0))
    assert labels.metadata["color"][2] == pytest.approx([200 / 255, 0.0, 100 / 255, 1.0])
    assert labels.metadata["properties"] == {1: {"class": "bg"}, 2: {"class": "fg"}}


def test_label_mode_prefers_labelled_pixels_and_smaller_ties():
    from napari_histo.io.ome_zarr import _mode2

    block = np.array([[0, 2, 1, 2, 0, 0], [2, 1, 0, 0, 0, 3]], np.uint8)  # three 2x2 blocks
    np.testing.assert_array_equal(_mode2(block), [[2, 1, 3]])
    np.testing.assert_array_equal(_mode2(np.array([[0, 0, 5]], np.uint16)), [[0, 5]])  # odd edges padded
