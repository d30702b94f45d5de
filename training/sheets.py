"""Example sheets a training run writes next to its plots (cheap: a few dozen patches).

* :func:`write_gradcam_sheet` (classification): ``gradcam_sheet.png`` — for each class a row of the
  most confident correct test patches and a row of the most confident wrong ones, each patch beside
  its Grad-CAM overlay (the project's :func:`napari_histo.models.gradcam.grad_cam`, Turbo colours of
  :func:`napari_histo.pipeline.explain.heatmap_overlay`), titled with true label, predicted label and
  probability; ``gradcam_sheet.json`` lists what is where.
* :func:`write_mask_examples` (segmentation): ``mask_examples.png`` — rows of image | truth |
  prediction in the model's class colours with a legend; ``mask_examples.json`` lists the patches.
* :func:`write_predictions` : ``predictions_<split>.csv``, the saved predictions the sheet picks from.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_histo.models import ModelSpec
from training.samples import Samples

__all__ = [
    "pick_examples",
    "predict_masks",
    "write_gradcam_sheet",
    "write_mask_examples",
    "write_predictions",
]

_PAD = 6  # space between cells
_FRAME = 3  # coloured frame of a cell: green correct, red wrong
_TITLE = 28  # two lines of text above a cell
_HEADER = 18  # one line of text above a row / the sheet
_GREEN, _RED, _GREY = (0, 158, 115), (213, 50, 0), (235, 235, 235)


def write_predictions(samples: Samples, probs: np.ndarray, path: Path) -> Path:
    """``index, patch, true, predicted, probability, prob_<class>...`` per patch of a split."""
    names = list(samples.class_names)
    pred = probs.argmax(1)
    keys = samples.paths or (samples.hashes.tolist() if samples.hashes is not None else [""] * len(samples))
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["index", "patch", "true", "predicted", "probability", *(f"prob_{n}" for n in names)])
        for i, (label, p) in enumerate(zip(samples.labels.tolist(), pred.tolist())):
            row = [i, keys[i], names[label], names[p], f"{probs[i, p]:.6f}"]
            writer.writerow(row + [f"{v:.6f}" for v in probs[i]])
    tmp.replace(path)
    return path


def pick_examples(labels: np.ndarray, probs: np.ndarray, per_class: int) -> list[dict[str, Any]]:
    """Two rows per class: its ``per_class`` most confident correct and most confident wrong patches.

    A row is ``{"kind": "correct" | "wrong", "true": c, "indices": [...], "of": n}`` (``of``: all
    such patches); confidence is the probability of the predicted class.
    """
    labels = np.asarray(labels, np.int64)
    pred = probs.argmax(1)
    confidence = probs[np.arange(len(pred)), pred]
    rows = []
    for c in range(probs.shape[1]):
        for kind, hit in (("correct", pred == c), ("wrong", pred != c)):
            found = np.flatnonzero((labels == c) & hit)
            order = found[np.argsort(-confidence[found], kind="stable")]
            rows.append({"kind": kind, "true": c, "indices": order[:per_class].tolist(), "of": len(found)})
    return rows


def write_gradcam_sheet(
    network: Any,
    spec: ModelSpec,
    samples: Samples,
    probs: np.ndarray,
    path: Path,
    *,
    split: str = "test",
    per_class: int = 4,
) -> Path:
    """``path`` (PNG) and ``path.with_suffix('.json')``: Grad-CAM of correct and wrong patches of a split.

    ``probs`` are the run's saved predictions of ``samples`` (n, k); each map explains the predicted
    class.  Raises ``TypeError`` for a network Grad-CAM cannot explain (no spatial feature map).
    """
    from napari_histo.models.gradcam import grad_cam
    from napari_histo.pipeline.explain import heatmap_overlay

    names = list(spec.class_names)
    rows = pick_examples(samples.labels, probs, per_class)
    chosen = sorted({i for row in rows for i in row["indices"]})
    pred = probs.argmax(1)
    cams: dict[int, np.ndarray] = {}
    pixels: dict[int, np.ndarray] = {}
    if chosen:
        part = samples.subset(np.array(chosen)).with_pixels()
        frozen = [q for q in network.parameters() if not q.requires_grad]  # a head-only phase froze them;
        for q in frozen:  # Grad-CAM needs the feature map's gradient
            q.requires_grad_(True)
        try:
            for c in sorted({int(pred[i]) for i in chosen}):
                local = [j for j, i in enumerate(chosen) if pred[i] == c]
                maps, _ = grad_cam(network, part.images[local], spec, target_class=c)  # type: ignore[index]
                for j, cam in zip(local, maps):
                    cams[chosen[j]], pixels[chosen[j]] = cam, part.images[j]  # type: ignore[index]
        finally:
            for q in frozen:
                q.requires_grad_(False)
            network.zero_grad(set_to_none=True)
    size = int(np.clip(samples.images.shape[1] if samples.images is not None else 112, 96, 128))
    cell_w, cell_h = 2 * size + 2 + 2 * _FRAME, _TITLE + size + 2 * _FRAME
    width = _PAD + per_class * (cell_w + _PAD)
    height = _HEADER + len(rows) * (_HEADER + cell_h + _PAD)
    sheet = np.full((height, width, 3), 255, np.uint8)
    texts: list[tuple[Any, ...]] = [
        (
            4,
            _PAD,
            f"{split} patches, most confident correct and wrong per class; right: Grad-CAM of the "
            "predicted class (red = most evidence, blue = least)",
            (0, 0, 0),
        )
    ]
    record = []
    top = _HEADER
    for row in rows:
        kind, true = row["kind"], names[row["true"]]
        shown = len(row["indices"])
        head = f"{kind}: true {true} ({shown} of {row['of']})" if row["of"] else f"{kind}: true {true} (none)"
        texts.append((top + 3, _PAD, head, _GREEN if kind == "correct" else _RED))
        top += _HEADER
        examples = []
        for col, i in enumerate(row["indices"]):
            left = _PAD + col * (cell_w + _PAD)
            frame = _GREEN if kind == "correct" else _RED
            r0 = top + _TITLE
            sheet[r0 : r0 + size + 2 * _FRAME, left : left + cell_w] = frame
            patch = _fit(pixels[i], size)
            cam = _fit_map(cams[i], size)
            inner = (r0 + _FRAME, left + _FRAME)
            sheet[inner[0] : inner[0] + size, inner[1] : inner[1] + size] = patch
            sheet[inner[0] : inner[0] + size, inner[1] + size : inner[1] + size + 2] = 255
            right = inner[1] + size + 2
            sheet[inner[0] : inner[0] + size, right : right + size] = heatmap_overlay(patch, cam)
            p = float(probs[i, pred[i]])
            texts.append((top + 1, left, f"true {true}", (0, 0, 0), cell_w))
            texts.append((top + 14, left, f"pred {names[int(pred[i])]}  p={p:.2f}", (0, 0, 0), cell_w))
            box = [r0, left, r0 + size + 2 * _FRAME, left + cell_w]
            examples.append({"index": int(i), "true": true, "predicted": names[int(pred[i])],
                             "probability": round(p, 6), "box": box})  # fmt: skip
        if not row["indices"]:
            sheet[top : top + cell_h, _PAD : width - _PAD] = _GREY
            texts.append(
                (top + cell_h // 2 - 6, 2 * _PAD, f"no {kind} prediction for true {true}", (90, 90, 90))
            )
        record.append({"kind": kind, "true": true, "of": row["of"], "examples": examples})
        top += cell_h + _PAD
    sheet = _draw_texts(sheet, texts)
    from napari_histo.io.files import write_png

    write_png(path, sheet)
    info = {"split": split, "per_class": per_class, "cell_px": size, "rows": record}
    path.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return path


def predict_masks(network: Any, images: np.ndarray, spec: ModelSpec, batch: int = 8) -> np.ndarray:
    """Class index per pixel (n, rows, cols) uint8 of uint8 RGB ``images``, as the run evaluates them."""
    import torch
    import torch.nn.functional as F

    device = next(network.parameters()).device
    mean = torch.tensor(spec.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, device=device).view(1, 3, 1, 1)
    out = []
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(images), batch):
                x = torch.from_numpy(np.ascontiguousarray(images[start : start + batch])).to(device)
                x = x.permute(0, 3, 1, 2).float().div_(255)
                shape = x.shape[-2:]
                if tuple(shape) != (spec.input_size,) * 2:
                    x = F.interpolate(x, size=(spec.input_size,) * 2, mode="bilinear", antialias=True)
                logits = network((x - mean) / std).float()
                if tuple(logits.shape[-2:]) != tuple(shape):
                    logits = F.interpolate(logits, size=tuple(shape), mode="bilinear")
                out.append(logits.argmax(1).to(torch.uint8).cpu().numpy())
    finally:
        network.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, *images.shape[1:3]), np.uint8)


def write_mask_examples(
    network: Any, spec: ModelSpec, samples: Samples, path: Path, *, split: str = "test", count: int = 4
) -> Path:
    """``path`` (PNG) and ``path.with_suffix('.json')``: ``count`` patches as image | truth | prediction.

    Patches are spread evenly over the split; truth and prediction are drawn in ``spec.class_colors``
    with a legend below.
    """
    from napari_histo.core.overlay import add_legend
    from napari_histo.io.files import write_png

    pick = np.unique(np.linspace(0, len(samples) - 1, min(count, len(samples))).round().astype(np.int64))
    part = samples.subset(pick).with_pixels()
    images, truth = part.images, part.masks
    if images is None or truth is None:
        raise ValueError("mask examples need patches with masks (a segmentation split)")
    pred = predict_masks(network, images, spec)
    colors = np.asarray(spec.class_colors, np.uint8)
    size = int(np.clip(images.shape[1], 128, 256))
    panel_w = size + _PAD
    width = _PAD + 3 * panel_w
    height = _HEADER + len(pick) * (_HEADER + size + _PAD)
    sheet = np.full((height, width, 3), 255, np.uint8)
    texts: list[tuple[Any, ...]] = [
        (4, _PAD + k * panel_w, name, (0, 0, 0), size)
        for k, name in enumerate(("image", "truth", "prediction"))
    ]
    record = []
    top = _HEADER
    for j, index in enumerate(pick.tolist()):
        t, p = truth[j], pred[j]
        accuracy = float((t == p).mean())
        texts.append((top + 3, _PAD, f"{split} patch {index}: pixel accuracy {accuracy:.3f}", (0, 0, 0)))
        top += _HEADER
        panels = (_fit(images[j], size), colors[_fit_labels(t, size)], colors[_fit_labels(p, size)])
        boxes = []
        for k, panel in enumerate(panels):
            left = _PAD + k * panel_w
            sheet[top : top + size, left : left + size] = panel
            boxes.append([top, left, top + size, left + size])
        record.append({"index": index, "pixel_accuracy": round(accuracy, 6), "image_box": boxes[0],
                       "truth_box": boxes[1], "prediction_box": boxes[2]})  # fmt: skip
        top += size + _PAD
    sheet = add_legend(_draw_texts(sheet, texts), spec.class_names, colors)
    write_png(path, sheet)
    info = {"split": split, "panel_px": size, "class_colors": colors.tolist(), "rows": record}
    path.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return path


def _fit(image: np.ndarray, size: int) -> np.ndarray:
    from napari_histo.core.tiling import resize_tile

    return resize_tile(np.ascontiguousarray(image[..., :3]), size)


def _fit_map(cam: np.ndarray, size: int) -> np.ndarray:
    if cam.shape == (size, size):
        return cam
    from skimage.transform import resize

    return np.asarray(resize(cam, (size, size), order=1, preserve_range=True, anti_aliasing=False))


def _fit_labels(mask: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of a class-index mask to (size, size)."""
    rows = (np.arange(size) * mask.shape[0] / size).astype(np.int64)
    cols = (np.arange(size) * mask.shape[1] / size).astype(np.int64)
    return mask[rows[:, None], cols[None, :]]


def _draw_texts(image: np.ndarray, texts: Sequence[tuple[Any, ...]]) -> np.ndarray:
    """``image`` with each ``(row, col, text, colour[, width])`` in Pillow's default font, cut to fit."""
    try:
        from PIL import Image, ImageDraw
    except ImportError:  # pragma: no cover - Pillow comes with scikit-image
        return image
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    for row, col, text, color, *width in texts:
        room = (width[0] if width else image.shape[1] - col) - 2
        if draw.textlength(text) > room:
            while text and draw.textlength(text + "..") > room:
                text = text[:-1]
            text += ".."
        draw.text((col, row), text, fill=color)
    return np.asarray(canvas, np.uint8).copy()
