"""``histo predict`` with a segmentation model: stitched mask, class areas, overlay — not a traceback."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import shared_file

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

from napari_histo.cli.main import cli  # noqa: E402
from napari_histo.models import ModelSpec, create_network  # noqa: E402
from napari_histo.models.loading import save_model  # noqa: E402

SPEC = ModelSpec(architecture="unet:resnet18", task="segmentation", num_classes=2, class_names=("bg", "fg"),
                 patch_size_pixels=64, spacing_um_px=4.0)  # fmt: skip


@pytest.fixture(scope="module")
def unet_dir(tmp_path_factory):
    torch.manual_seed(0)
    return save_model(create_network(SPEC).eval(), SPEC, tmp_path_factory.mktemp("unet") / "unet")


def test_predict_routes_a_segmentation_model_through_stitching(tmp_path, unet_dir):
    import zarr

    from napari_histo.pipeline import open_session
    from napari_histo.pipeline.tissue import plan_grid, slide_tissue_mask, tissue_tiles

    slide = shared_file("wsi", "CMU-1-Small-Region.svs")
    out = tmp_path / "out"
    args = ["predict", str(slide), "--model", str(unet_dir), "--out", str(out), "--device", "cpu",
            "--batch-size", "16", "--workers", "2"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "segmented" in result.output and "mm²" in result.output
    stem = "CMU-1-Small-Region"
    mask = out / f"{stem}.mask.zarr"
    assert mask.is_dir() and not (out / f"{stem}.zarr").exists()
    assert (out / f"{stem}.overlay.png").stat().st_size > 0
    assert not list(out.glob("*.partial")) and not list(out.glob("*.tmp*"))
    summary = json.loads((out / f"{stem}.summary.json").read_text())
    assert summary["task"] == "segmentation" and set(summary["classes"]) == {"bg", "fg"}

    group = zarr.open_group(str(mask), mode="r")
    labels = np.asarray(group["labels"])
    assert group.attrs["complete"] and group.attrs["mpp"] == SPEC.spacing_um_px
    assert sum(c["pixels"] for c in summary["classes"].values()) == int((labels >= 0).sum())
    assert summary["segmented_area_mm2"] == pytest.approx((labels >= 0).sum() * (4.0 / 1000) ** 2, rel=1e-3)
    # every tissue tile is segmented, to its last pixel
    with open_session(slide) as session:
        grid = plan_grid(session, SPEC.spacing_um_px, SPEC.patch_size_pixels, SPEC.patch_size_pixels // 8)
        kept, _ = tissue_tiles(grid, slide_tissue_mask(session), 0.5)
    assert len(kept) == summary["n_tiles"] > 0
    scale = SPEC.spacing_um_px / grid.slide_mpp
    for r, c in np.rint(kept.origins_rc / scale).astype(int):
        assert (labels[r : r + 64, c : c + 64] >= 0).all()

    again = CliRunner().invoke(cli, args)  # done: skipped, not redone
    assert again.exit_code == 0 and "already done" in again.output


def test_segmentation_reaches_the_slide_edges_with_no_tissue_filter(tmp_path, unet_dir):
    import zarr

    slide = shared_file("wsi", "CMU-1-Small-Region.svs")
    args = ["predict", str(slide), "--model", str(unet_dir), "--out", str(tmp_path), "--device", "cpu",
            "--min-tissue", "0", "--batch-size", "16", "--workers", "2"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    labels = np.asarray(zarr.open_group(str(tmp_path / "CMU-1-Small-Region.mask.zarr"), mode="r")["labels"])
    assert (labels >= 0).all(), f"{(labels < 0).mean():.1%} of the slide unfilled"
