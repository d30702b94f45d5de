"""Grad-CAM equals CAM for a GAP + linear head, and points at the evidence."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_histo.models import ModelSpec, create_network  # noqa: E402
from napari_histo.models.gradcam import grad_cam  # noqa: E402

SPEC = ModelSpec(architecture="resnet18", num_classes=3, class_names=("a", "b", "c"),
                 patch_size_pixels=64, spacing_um_px=0.5)  # fmt: skip


def test_grad_cam_equals_cam_for_global_average_pooling():
    torch.manual_seed(0)
    model = create_network(SPEC).eval()
    tiles = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    maps, classes = grad_cam(model, tiles, SPEC, target_class=1, upsample=False, normalize=False)
    # CAM (Zhou et al.): relu(sum_c w_kc F_c) / (H W) for the fc weights w_k of class k
    x = torch.from_numpy(tiles).permute(0, 3, 1, 2).float()
    mean = torch.tensor(SPEC.mean).view(1, 3, 1, 1) * 255
    std = torch.tensor(SPEC.std).view(1, 3, 1, 1) * 255
    with torch.no_grad():
        features = model.forward_features((x - mean) / std)
    w = model.fc.weight[1].detach().view(1, -1, 1, 1)
    hw = features.shape[2] * features.shape[3]
    cam = torch.relu((w * features).sum(1) / hw).numpy()
    assert maps.shape == (2, 2, 2)  # 64 px / 32 stride
    np.testing.assert_allclose(maps, cam, rtol=1e-4, atol=1e-6)
    assert (classes == 1).all()


def test_upsampled_normalised_maps():
    torch.manual_seed(0)
    model = create_network(SPEC).eval()
    tiles = np.random.default_rng(1).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    maps, classes = grad_cam(model, tiles, SPEC)
    assert maps.shape == (3, 64, 64)
    assert maps.min() >= 0
    assert maps.max() <= 1 + 1e-6
    with torch.no_grad():
        x = torch.from_numpy(tiles).permute(0, 3, 1, 2).float() / 255 - torch.tensor(SPEC.mean).view(
            1, 3, 1, 1
        )
        predicted = model(x / torch.tensor(SPEC.std).view(1, 3, 1, 1)).argmax(1).numpy()
    np.testing.assert_array_equal(classes, predicted)
    assert model.training is False
