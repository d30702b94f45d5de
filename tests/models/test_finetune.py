"""Correct and retrain: corrected tiles → class folders → training in a child process → a new model."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_file

torch = pytest.importorskip("torch")
pytest.importorskip("yaml")

from napari_histo.core.progress import run_to_end  # noqa: E402
from napari_histo.errors import InvalidParameterError, TrainingFailedError  # noqa: E402
from napari_histo.models import ModelSpec, create_network, load_model, save_model  # noqa: E402
from napari_histo.models.engine import InferenceConfig  # noqa: E402
from napari_histo.pipeline import open_session, predict_slide, resolve_model  # noqa: E402
from napari_histo.pipeline.finetune import finetune, finetune_and_predict  # noqa: E402

SPEC = ModelSpec("resnet18", 2, ("normal", "tumour"), patch_size_pixels=64, spacing_um_px=2.0)
CPU = InferenceConfig(device="cpu", batch_size=16, workers=2)


def test_corrections_fine_tune_a_model_in_a_child_process_and_predict_again(tmp_path):
    torch.manual_seed(0)
    model = resolve_model(save_model(create_network(SPEC), SPEC, tmp_path / "model"), "cpu")
    with open_session(shared_file("wsi", "CMU-1-Small-Region.svs")) as session:
        before = run_to_end(predict_slide(session, model, min_tissue=0.3, config=CPU))
        grid = before.grid
        classes = np.full(len(grid), -1)
        classes[: len(grid) // 2] = 0  # the "painted" corrections
        classes[len(grid) // 2 :] = 1
        classes[::7] = -1  # some tiles left unlabelled
        stages = []
        work = finetune_and_predict(session, model, before, classes, tmp_path / "work", epochs=1, config=CPU)
        tuned = run_to_end(work, stages.append)
    assert sum(tuned.tiles.values()) == int((classes >= 0).sum())  # only the corrected tiles
    assert len(list((tmp_path / "work" / "tiles" / "tumour").glob("*.png"))) == tuned.tiles["tumour"]
    assert stages[0].stage == "exporting corrected tiles"
    batches = [s for s in stages if s.stage.startswith("training: epoch 1 of 1, batch ")]
    assert batches, [s.stage for s in stages]  # per batch, not per epoch
    assert all(b.total == batches[0].total > 0 for b in batches)
    assert [b.done for b in batches] == sorted(b.done for b in batches)
    assert batches[-1].done == batches[-1].total and batches[-1].seconds_left == 0  # the last batch was seen
    assert ("training: done", 1, 1) in {(s.stage, s.done, s.total) for s in stages}
    assert stages[-1].stage == "predicting"
    # the child built its recipe with training's schema and kept it beside the run
    assert (tmp_path / "work" / "runs" / "fine-tuned" / "recipe.yaml").exists()
    assert tuned.model.spec.class_names == SPEC.class_names
    assert tuned.model.spec.spacing_um_px == SPEC.spacing_um_px
    np.testing.assert_array_equal(tuned.predictions.grid.origins_rc, grid.origins_rc)
    original = load_model(model.directory, device="cpu")
    changed = [
        not torch.equal(a, b)
        for a, b in zip(tuned.model.network().state_dict().values(), original.state_dict().values())
    ]
    assert any(changed)  # it trained


def test_too_few_corrections_are_refused_before_any_work(tmp_path):
    model = resolve_model(save_model(create_network(SPEC), SPEC, tmp_path / "model"), "cpu")
    with open_session(shared_file("wsi", "CMU-1-Small-Region.svs")) as session:
        predictions = run_to_end(predict_slide(session, model, min_tissue=0.3, config=CPU))
        classes = np.full(len(predictions.grid), -1)
        classes[:6] = 1  # one class only
        with pytest.raises(InvalidParameterError, match="at least two classes"):
            run_to_end(finetune_and_predict(session, model, predictions, classes, tmp_path / "w"))
    assert not (tmp_path / "w").exists()


def test_failed_training_reports_the_childs_output(tmp_path):
    model = resolve_model(save_model(create_network(SPEC), SPEC, tmp_path / "model"), "cpu")
    with pytest.raises(TrainingFailedError, match=r"(?s)training failed.*tiles folder not found"):
        run_to_end(finetune(model, tmp_path / "no-tiles", tmp_path / "runs", epochs=1, poll_s=0.1))
