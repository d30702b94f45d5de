"""Whole-slide inference on the CPU path, end to end on real slides with a small model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import shared_file

torch = pytest.importorskip("torch")

from napari_histo.cli.main import cli  # noqa: E402
from napari_histo.core.progress import run_to_end  # noqa: E402
from napari_histo.errors import InvalidParameterError, NoTissueError  # noqa: E402
from napari_histo.io.prediction_store import PredictionStore  # noqa: E402
from napari_histo.models import ModelSpec, create_network, save_model  # noqa: E402
from napari_histo.models import engine as engine_module  # noqa: E402
from napari_histo.models.engine import InferenceConfig, predict_tiles  # noqa: E402
from napari_histo.pipeline import open_session, resolve_model  # noqa: E402
from napari_histo.pipeline.tissue import plan_grid, slide_tissue_mask, tissue_tiles  # noqa: E402

SPEC = ModelSpec(
    architecture="resnet18",
    num_classes=3,
    class_names=("Tumor", "Stroma", "Other"),
    patch_size_pixels=64,
    spacing_um_px=2.0,
    class_colors=((200, 0, 0), (150, 200, 150), (20, 20, 200)),
)
CPU = InferenceConfig(device="cpu", batch_size=16, workers=2)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    return save_model(create_network(SPEC), SPEC, tmp_path_factory.mktemp("model") / "tiny-resnet18")


def _tissue_grid(session, min_tissue=0.5):
    grid = plan_grid(session, SPEC.spacing_um_px, SPEC.patch_size_pixels)
    return tissue_tiles(grid, slide_tissue_mask(session), min_tissue)[0]


def _run(session, grid, model, progress=None, **kw):
    return run_to_end(predict_tiles(session.slide, SPEC, grid, model, config=CPU, **kw), progress)


def test_cli_predict_writes_consistent_outputs(model_dir, tmp_path):
    from qupath_bridge import read_geojson

    path = shared_file("wsi", "CMU-1-Small-Region.svs")
    out = tmp_path / "out"
    args = ["predict", str(path), "--model", str(model_dir), "--out", str(out), "--device", "cpu",
            "--workers", "2", "--batch-size", "16"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    with open_session(path) as session:
        expected_tiles = len(_tissue_grid(session))
    store = PredictionStore.open(out / "CMU-1-Small-Region.zarr")
    probs = store.probabilities()
    assert probs.shape == (expected_tiles, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    class_map = np.asarray(store.array("class_map"))
    assert (class_map >= 0).sum() == expected_tiles
    assert store.attrs["spec"]["class_names"] == ["Tumor", "Stroma", "Other"]

    objects = read_geojson(out / "CMU-1-Small-Region.geojson")
    assert len(objects) == expected_tiles
    assert {o.object_type.value for o in objects} == {"tile"}
    first = objects[0]
    assert set(first.measurements) == {"Tumor", "Stroma", "Other"}
    assert first.classification.name == max(first.measurements, key=first.measurements.get)
    side = SPEC.patch_size_pixels * SPEC.spacing_um_px / 0.499
    assert first.geometry.area == pytest.approx(side * side, rel=0.01)

    summary = json.loads((out / "CMU-1-Small-Region.summary.json").read_text())
    assert summary["n_tiles"] == expected_tiles
    assert sum(c["tiles"] for c in summary["classes"].values()) == expected_tiles
    assert summary["slide_call"]["class"] in SPEC.class_names
    assert (out / "CMU-1-Small-Region.overlay.png").stat().st_size > 1000

    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0
    assert "already done" in again.output


def test_interrupted_run_resumes_to_identical_outputs(model_dir, tmp_path):
    from napari_histo.models import load_model

    path = shared_file("wsi", "CMU-1-Small-Region.svs")
    model = load_model(model_dir, device="cpu")
    with open_session(path) as session:
        grid = _tissue_grid(session)
        reference = _run(session, grid, model).probabilities
        target = tmp_path / "run.zarr"
        generator = predict_tiles(session.slide, SPEC, grid, model, config=CPU, store_path=target)
        next(generator)  # one batch, then the run is "killed"
        generator.close()
        partial = PredictionStore.open(tmp_path / "run.zarr.partial")
        assert 0 < int(np.asarray(partial.array("done")).sum()) < len(grid)
        assert not target.exists()
        progress = []
        final = _run(session, grid, model, progress.append, store_path=target)
    assert progress[0].done > 16  # started after the batch that was already stored
    assert final.store_path == target
    np.testing.assert_allclose(final.probabilities, reference, atol=1e-6)
    np.testing.assert_allclose(PredictionStore.open(target).probabilities(), reference, atol=1e-6)


def test_slide_without_mpp_needs_it_and_says_so(model_dir, tmp_path):
    path = shared_file("wsi", "tcga-cr-7395-01a-01-ts1.svs")
    base = ["predict", str(path), "--model", str(model_dir), "--out", str(tmp_path), "--device", "cpu"]
    result = CliRunner().invoke(cli, base)
    assert result.exit_code != 0
    assert "--slide-mpp" in str(result.exception)
    result = CliRunner().invoke(cli, [*base, "--slide-mpp", "0.5", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "tcga-cr-7395-01a-01-ts1.summary.json").read_text())["n_tiles"] > 10


def test_wrong_grid_and_no_tissue_are_refused(model_dir, tmp_path):
    import imagecodecs

    from napari_histo.pipeline.predict import NotBrightfieldWarning
    from napari_histo.pipeline.slide_job import SlideJob, run_slide_job

    path = shared_file("wsi", "CMU-1-Small-Region.svs")
    with open_session(path) as session:
        grid = plan_grid(session, 1.0, 64)
        with pytest.raises(InvalidParameterError, match=r"trained at 2\.0 µm/px"):
            _run(session, grid, create_network(SPEC))
    blank = tmp_path / "blank.png"
    blank.write_bytes(imagecodecs.png_encode(np.full((2000, 2000, 3), 245, np.uint8)))
    job = SlideJob(blank, tmp_path / "out", CPU, slide_mpp=0.5)
    with (
        pytest.raises(NoTissueError, match=r"has at least 50% tissue.*--min-tissue"),
        pytest.warns(NotBrightfieldWarning, match="one flat colour"),  # said first, once
    ):
        run_to_end(run_slide_job(job, resolve_model(model_dir, "cpu")))
    assert not (tmp_path / "out" / "blank.summary.json").exists()


def test_cuda_out_of_memory_halves_the_batch(model_dir, monkeypatch):
    real_forward = engine_module._forward
    sizes = []

    def forward(model, batch, *args):
        sizes.append(len(batch))
        if len(batch) > 4:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_forward(model, batch, *args)

    monkeypatch.setattr(engine_module, "_forward", forward)
    path = shared_file("wsi", "CMU-1-Small-Region.svs")
    with open_session(path) as session:
        grid = _tissue_grid(session)
        with pytest.warns(RuntimeWarning, match="out of memory") as record:
            final = _run(session, grid, create_network(SPEC).eval())
    messages = [str(w.message) for w in record]
    assert any("batch of 16 tiles; going on with 8" in m for m in messages)
    assert max(s for s in sizes if s <= 4) == 4
    assert not np.isnan(final.probabilities).any()
    np.testing.assert_allclose(final.probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_finished_store_loads_back_as_predictions(model_dir, tmp_path):
    from napari_histo.models import load_model
    from napari_histo.models.engine import load_tile_predictions

    with open_session(shared_file("wsi", "CMU-1-Small-Region.svs")) as session:
        grid = _tissue_grid(session)
        final = _run(session, grid, load_model(model_dir, device="cpu"), store_path=tmp_path / "s.zarr")
    loaded = load_tile_predictions(tmp_path / "s.zarr")
    np.testing.assert_array_equal(loaded.grid.origins_rc, grid.origins_rc)
    assert loaded.grid.tile_px_level0 == pytest.approx(grid.tile_px_level0)
    assert loaded.grid.level_downsample == grid.level_downsample
    np.testing.assert_array_equal(loaded.probabilities, final.probabilities)
    assert loaded.spec == SPEC
