"""Corrected tiles → class folders → ``histo train`` in a child process → a new model that loads."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_file

torch = pytest.importorskip("torch")
pytest.importorskip("yaml")

from napari_histo.io import open_slide  # noqa: E402
from napari_histo.io.patches import plan_slide_grid, slide_tissue_mask, tissue_tiles  # noqa: E402
from napari_histo.io.training_export import export_labelled_tiles  # noqa: E402
from napari_histo.models import ModelSpec, create_network, load_model, load_spec, save_model  # noqa: E402
from napari_histo.models.finetune import finetune_recipe, run_finetune  # noqa: E402

SPEC = ModelSpec("resnet18", 2, ("normal", "tumour"), patch_size_pixels=64, spacing_um_px=2.0)


def test_corrections_fine_tune_a_model_in_a_child_process(tmp_path):
    torch.manual_seed(0)
    model_dir = save_model(create_network(SPEC), SPEC, tmp_path / "model")
    with open_slide(shared_file("wsi", "CMU-1-Small-Region.svs")) as slide:
        grid = plan_slide_grid(slide, 2.0, 64)
        grid, _ = tissue_tiles(grid, slide_tissue_mask(slide), 0.3)
        classes = np.full(len(grid), -1)
        classes[: len(grid) // 2] = 0  # the "painted" corrections
        classes[len(grid) // 2 :] = 1
        classes[::7] = -1  # some tiles left unlabelled
        counts = export_labelled_tiles(slide, grid, classes, SPEC.class_names, tmp_path / "tiles", workers=2)
    assert sum(counts.values()) == int((classes >= 0).sum())
    assert len(list((tmp_path / "tiles" / "tumour").glob("*.png"))) == counts["tumour"]

    recipe = finetune_recipe(SPEC, model_dir, tmp_path / "tiles", tmp_path / "runs", epochs=1, batch_size=8)
    steps = []
    generator = run_finetune(recipe, tmp_path / "recipe.yaml", poll_s=0.2)
    try:
        while True:
            steps.append(next(generator))
    except StopIteration as stop:
        new_model = stop.value
    assert steps[-1] == (1, 1)
    spec = load_spec(new_model)
    assert spec.class_names == SPEC.class_names
    assert spec.spacing_um_px == SPEC.spacing_um_px
    tuned = load_model(new_model, device="cpu")
    original = load_model(model_dir, device="cpu")
    changed = [
        not torch.equal(a, b) for a, b in zip(tuned.state_dict().values(), original.state_dict().values())
    ]
    assert any(changed)  # it trained


def test_failed_training_reports_the_childs_output(tmp_path):
    recipe = finetune_recipe(
        SPEC, tmp_path / "missing-model", tmp_path / "no-tiles", tmp_path / "runs", epochs=1
    )
    with pytest.raises(RuntimeError, match="training failed"):
        list(run_finetune(recipe, tmp_path / "recipe.yaml", poll_s=0.1))
