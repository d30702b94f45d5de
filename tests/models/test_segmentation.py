"""Segmentation on a real slide: stitched labels, bounded store, resume to identical output."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_file

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

from napari_histo.core.progress import run_to_end  # noqa: E402
from napari_histo.models import ModelSpec, create_network  # noqa: E402
from napari_histo.models.engine import InferenceConfig  # noqa: E402
from napari_histo.models.segmentation import SegmentationResult, output_shape, predict_segmentation  # noqa: E402
from napari_histo.models.spec import ModelSpecError  # noqa: E402
from napari_histo.pipeline import open_session  # noqa: E402
from napari_histo.pipeline.tissue import plan_grid  # noqa: E402

SPEC = ModelSpec(architecture="unet:resnet18", task="segmentation", num_classes=2, class_names=("bg", "fg"),
                 patch_size_pixels=64, spacing_um_px=4.0)  # fmt: skip
CPU = InferenceConfig(device="cpu", batch_size=8, workers=2)


def test_stitched_labels_cover_the_grid_and_resume_identically(tmp_path):
    import zarr

    path = shared_file("wsi", "CMU-1-Small-Region.svs")
    torch.manual_seed(0)
    model = create_network(SPEC).eval()
    with open_session(path) as session:
        slide = session.slide
        grid = plan_grid(session, SPEC.spacing_um_px, SPEC.patch_size_pixels, overlap_px=16)
        result = run_to_end(
            predict_segmentation(slide, SPEC, grid, model, tmp_path / "full.zarr", config=CPU)
        )
        assert isinstance(result, SegmentationResult)
        assert result.shape_rc == output_shape(grid)
        labels = np.asarray(zarr.open_group(str(tmp_path / "full.zarr"), mode="r")["labels"])
        covered = labels >= 0
        assert covered.sum() == result.class_pixels.sum()
        stride = grid.tile_px - grid.overlap_px
        rows_covered = (len(np.unique(grid.origins_rc[:, 0])) - 1) * stride + grid.tile_px
        cols_covered = (len(np.unique(grid.origins_rc[:, 1])) - 1) * stride + grid.tile_px
        assert covered[:rows_covered, :cols_covered].all()
        if rows_covered < labels.shape[0]:  # tiles flush with the bottom edge cover the rest
            assert covered[rows_covered:, :cols_covered].any()

        killed = predict_segmentation(slide, SPEC, grid, model, tmp_path / "resumed.zarr", config=CPU)
        next(killed)
        next(killed)  # two batches, then killed
        killed.close()
        partial = zarr.open_group(str(tmp_path / "resumed.zarr.partial"), mode="r")
        assert 0 < partial.attrs["rows_done"] < labels.shape[0]
        run_to_end(predict_segmentation(slide, SPEC, grid, model, tmp_path / "resumed.zarr", config=CPU))
    resumed = np.asarray(zarr.open_group(str(tmp_path / "resumed.zarr"), mode="r")["labels"])
    np.testing.assert_array_equal(resumed, labels)


def test_classifier_spec_is_refused(tmp_path):
    spec = ModelSpec(architecture="resnet18", num_classes=2, class_names=("a", "b"), patch_size_pixels=64,
                     spacing_um_px=4.0)  # fmt: skip
    with open_session(shared_file("wsi", "CMU-1-Small-Region.svs")) as session:
        grid = plan_grid(session, 4.0, 64)
        with pytest.raises(
            ModelSpecError, match="classification model; segmentation needs task: segmentation"
        ):
            next(predict_segmentation(session.slide, spec, grid, create_network(spec), tmp_path / "x.zarr"))
