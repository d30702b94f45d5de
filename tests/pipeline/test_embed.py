"""histo embed's table: the contract with slide-level models, resume, settings, and what the features are."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_file

from napari_histo.core.progress import run_to_end
from napari_histo.errors import InvalidParameterError
from napari_histo.io.regions import read_tile
from napari_histo.pipeline.embed import EmbedSettings, embed_slide, embeddings_path, read_embeddings
from napari_histo.pipeline.session import open_session
from napari_histo.pipeline.tissue import plan_grid, slide_tissue_mask, tissue_tiles

torch = pytest.importorskip("torch")

SETTINGS = EmbedSettings(device="cpu", batch_size=16, workers=2)


@pytest.fixture(scope="module")
def slide():
    return shared_file("wsi", "CMU-1-Small-Region.svs")


@pytest.fixture(scope="module")
def encoder():
    from napari_histo.models.encoders import load_encoder

    return load_encoder(None, "cpu")  # the shipped pcam-mobilenetv2 backbone


@pytest.fixture(scope="module")
def table(slide, encoder, tmp_path_factory):
    out = tmp_path_factory.mktemp("emb")
    with open_session(slide) as session:
        return run_to_end(embed_slide(session, encoder, out, SETTINGS))


def test_table_follows_the_contract(table, slide, encoder):
    import zarr

    assert (
        table == embeddings_path(slide, table.parent) and table.name == "CMU-1-Small-Region.embeddings.zarr"
    )
    group = zarr.open_group(str(table), mode="r")
    assert group.metadata.zarr_format == 2
    assert group["features"].dtype == np.float16 and group["features"].shape[1] == encoder.feature_dim == 1280
    assert group["coords"].dtype == np.int64 and group["coords"].shape[1] == 2
    assert group["tissue"].dtype == np.float32 and bool(np.all(group["done"][:]))
    attrs = dict(group.attrs)
    for key in ("encoder", "encoder_hash", "encoder_source", "feature_dim", "mpp", "tile_px",
                "stride_px_level0",
                "slide_mpp", "slide", "slide_shape", "complete", "napari_histo_version"):  # fmt: skip
        assert key in attrs, key
    assert attrs["encoder"] == "pcam-mobilenetv2" and len(attrs["encoder_hash"]) == 64
    assert attrs["complete"] is True and attrs["mpp"] == 1.0 and attrs["tile_px"] == 96
    assert attrs["slide_shape"] == [2967, 2220]
    emb = read_embeddings(table)
    assert emb.features.dtype == np.float32 and len(emb) == len(emb.features) > 10
    assert np.isfinite(emb.features).all() and emb.features.std() > 0
    assert not table.with_name(table.name + ".partial").exists()


def test_coords_are_the_tissue_tiles(table, slide):
    emb = read_embeddings(table)
    with open_session(slide) as session:
        grid = plan_grid(session, 1.0, 96)
        kept, fractions = tissue_tiles(grid, slide_tissue_mask(session), 0.5)
    np.testing.assert_array_equal(emb.coords, kept.origins_rc)
    np.testing.assert_allclose(emb.tissue, fractions)
    assert emb.tissue.min() >= 0.5


def test_features_are_the_encoders_output_on_the_same_tiles(table, slide, encoder):
    emb = read_embeddings(table)
    with open_session(slide) as session:
        grid = plan_grid(session, 1.0, 96)
        kept, _ = tissue_tiles(grid, slide_tissue_mask(session), 0.5)
        picks = [0, len(kept) // 2, len(kept) - 1]
        tiles = np.stack([read_tile(session.slide, kept, i) for i in picks])
    x = torch.from_numpy(tiles).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(encoder.mean).view(1, 3, 1, 1)) / torch.tensor(encoder.std).view(1, 3, 1, 1)
    with torch.inference_mode():
        backbone = encoder.network.inner
        expected = backbone.forward_head(backbone.forward_features(x), pre_logits=True).numpy()
    np.testing.assert_allclose(emb.features[picks], expected, rtol=2e-3, atol=2e-3)  # stored as float16


def test_a_killed_run_resumes_to_the_same_table(table, slide, encoder, tmp_path):
    with open_session(slide) as session:
        work = embed_slide(session, encoder, tmp_path, SETTINGS)
        items = [next(work) for _ in range(3)]  # the start and two batches of 16, then "killed"
        work.close()
    assert items[-1].done == 32
    partial = embeddings_path(slide, tmp_path).with_name("CMU-1-Small-Region.embeddings.zarr.partial")
    assert partial.is_dir() and not embeddings_path(slide, tmp_path).exists()
    with open_session(slide) as session:
        work = embed_slide(session, encoder, tmp_path, SETTINGS)
        first = next(work)
        assert first.done == 32  # goes on where it stopped
        resumed = run_to_end(work)
    np.testing.assert_array_equal(read_embeddings(resumed).features, read_embeddings(table).features)
    np.testing.assert_array_equal(read_embeddings(resumed).coords, read_embeddings(table).coords)


def test_changed_settings_are_refused_and_overwrite_replaces(table, slide, encoder):
    with open_session(slide) as session:
        again = embed_slide(session, encoder, table.parent, SETTINGS)
        assert run_to_end(again) == table  # the same settings: kept as is
        other = EmbedSettings(device="cpu", batch_size=16, workers=2, min_tissue=0.8)
        with pytest.raises(InvalidParameterError, match=r"--min-tissue 0\.5 -> 0\.8"):
            run_to_end(embed_slide(session, encoder, table.parent, other))
    assert read_embeddings(table).tissue.min() < 0.8  # untouched


def test_random_vit_of_a_foundation_shape_runs_the_same_path(slide, tmp_path):
    """Code path only: a randomly initialised Virchow2-shaped ViT (1 block); its features mean nothing."""
    from napari_histo.models.encoders import random_foundation_encoder

    encoder = random_foundation_encoder("virchow2", depth=1)
    settings = EmbedSettings(mpp=4.0, min_tissue=0.0, device="cpu", batch_size=4, workers=1)
    with open_session(slide) as session:
        path = run_to_end(embed_slide(session, encoder, tmp_path, settings))
    emb = read_embeddings(path)
    assert emb.features.shape[1] == 2560 and emb.attrs["encoder"] == "virchow2"
    assert emb.attrs["encoder_hash"] == "random-init" and emb.attrs["tile_px"] == 224


def test_cohort_embed_job_runs_then_skips(slide, tmp_path):
    from napari_histo.pipeline.cohort import CohortSlide, run_slide_task

    options = {"encoder": "pcam-mobilenetv2", "mpp": 2.0, "device": "cpu", "workers": 2, "min_tissue": 0.5}
    first = run_slide_task("embed", CohortSlide(slide), tmp_path, options)
    assert first.status == "done" and first.tiles > 0, first.error
    assert first.outputs["embeddings"].endswith("CMU-1-Small-Region.embeddings.zarr")
    again = run_slide_task("embed", CohortSlide(slide), tmp_path, options)
    assert again.status == "skipped" and again.tiles == first.tiles
