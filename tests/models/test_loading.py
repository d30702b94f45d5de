"""Model directories: save/load, mismatch errors, local ImageNet weights (real files)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import shared_file

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from napari_histo.errors import DownloadError  # noqa: E402
from napari_histo.models import ModelSpec, ModelSpecError, create_network, load_model, save_model  # noqa: E402
from napari_histo.models.weights import load_imagenet_weights  # noqa: E402


def _spec(architecture="resnet18", num_classes=2, **kw):
    names = [f"class{i}" for i in range(num_classes)]
    return ModelSpec(architecture=architecture, num_classes=num_classes, class_names=names,
                     patch_size_pixels=64, spacing_um_px=0.5, **kw)  # fmt: skip


def test_save_and_load_gives_the_same_outputs(tmp_path):
    spec = _spec()
    torch.manual_seed(0)
    net = create_network(spec).eval()
    save_model(net, spec, tmp_path / "m")
    loaded = load_model(tmp_path / "m", device="cpu")
    assert not loaded.training
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x))


def test_weights_that_do_not_match_the_spec(tmp_path):
    save_model(create_network(_spec(num_classes=3)), _spec(num_classes=3), tmp_path / "m")
    # model.json now claims two classes: the head has the wrong shape
    from napari_histo.models import save_spec

    save_spec(_spec(num_classes=2), tmp_path / "m")
    with pytest.raises(ModelSpecError, match=r"fc.weight: file \(3, 512\) vs model \(2, 512\)"):
        load_model(tmp_path / "m", device="cpu")
    save_spec(_spec("resnet50"), tmp_path / "m")
    with pytest.raises(ModelSpecError, match="another architecture"):
        load_model(tmp_path / "m", device="cpu")


def test_missing_and_corrupt_weights(tmp_path):
    from napari_histo.models import save_spec

    save_spec(_spec(), tmp_path / "m")
    with pytest.raises(ModelSpecError, match=r"weights\.safetensors is missing"):
        load_model(tmp_path / "m")
    (tmp_path / "m" / "weights.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelSpecError, match="not a readable safetensors"):
        load_model(tmp_path / "m")
    with pytest.raises(ModelSpecError, match="not a model directory"):
        load_model(tmp_path / "nowhere")


def test_unknown_architecture_suggests_names():
    with pytest.raises(ModelSpecError, match="did you mean"):
        create_network(_spec("resnet_18"))


def test_local_mobilenetv2_weights_match_torchvision():
    torchvision = pytest.importorskip("torchvision")
    path = shared_file("weights", "mobilenet_v2-b0353104.pth")
    ours = timm.create_model("mobilenetv2_100", num_classes=1000).eval()
    assert load_imagenet_weights(ours, path) == []
    reference = torchvision.models.mobilenet_v2()
    reference.load_state_dict(torch.load(path, weights_only=True))
    reference.eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-4, atol=1e-4)


def test_local_efficientnet_lite0_weights_classify_an_image():
    path = shared_file("weights", "efficientnet-lite0-57934424.pth")
    model = timm.create_model("tf_efficientnet_lite0", num_classes=1000).eval()
    assert load_imagenet_weights(model, path) == []
    # a new 2-class head keeps the backbone and leaves only the head initial
    fresh = timm.create_model("tf_efficientnet_lite0", num_classes=2)
    left = load_imagenet_weights(fresh, path)
    assert left == ["classifier.weight", "classifier.bias"]
    torch.testing.assert_close(fresh.conv_stem.weight, model.conv_stem.weight)
    # ImageNet weights are confident on a real photo-like input, random ones are not
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.uniform(-1, 1, (1, 3, 224, 224)).astype(np.float32))
    with torch.no_grad():
        logits = model(x)
    assert torch.isfinite(logits).all()
    assert logits.std() > 0.5


def test_weights_for_another_architecture_are_refused():
    path = shared_file("weights", "mobilenet_v2-b0353104.pth")
    model = timm.create_model("resnet18", num_classes=2)
    with pytest.raises(ModelSpecError, match="another architecture"):
        load_imagenet_weights(model, path)


def test_pretrained_offline_says_how_to_use_local_weights(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(DownloadError, match=r"mobilenet_v2-b0353104\.pth"):
        create_network(_spec("mobilenetv2_100"), pretrained=True)


@pytest.mark.parametrize("architecture", ["unet:resnet34", "fpn:resnet34", "unet:vgg16"])
def test_segmentation_networks(architecture):
    pytest.importorskip("segmentation_models_pytorch")
    spec = _spec(architecture, num_classes=3, task="segmentation")
    net = create_network(spec).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 64, 64)).shape == (1, 3, 64, 64)
    with pytest.raises(ModelSpecError, match="unet:resnet34"):
        create_network(_spec("resnet34", task="segmentation"))


# loading TorchScript back is deprecated in torch >= 2.10, but it is what QuPath's extension reads
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_export_wsinfer_torchscript_matches_the_model(tmp_path):
    import json

    from click.testing import CliRunner

    from napari_histo.cli.main import cli

    spec = _spec("mobilenetv2_100", num_classes=2, input_size=96)
    torch.manual_seed(1)
    save_model(create_network(spec), spec, tmp_path / "m")
    result = CliRunner().invoke(cli, ["export-wsinfer", str(tmp_path / "m"), str(tmp_path / "ws")])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "ws" / "config.json").read_text())
    assert config["architecture"] == "mobilenetv2_100"
    assert config["patch_size_pixels"] == 64
    assert config["transform"][0] == {"name": "Resize", "arguments": {"size": 96}}
    scripted = torch.jit.load(str(tmp_path / "ws" / "torchscript_model.pt"))
    x = torch.randn(3, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(
            scripted(x), load_model(tmp_path / "m", device="cpu")(x), rtol=1e-4, atol=1e-4
        )


class RunsCode:
    """Unpickled, this raises: the tests below pass only if it never is."""

    def __reduce__(self):
        import builtins

        return (builtins.exec, ("raise AssertionError('a pickle was unpickled')",))


def test_pickles_and_wsinfer_folders_are_refused_unread(tmp_path):
    import pickle

    from napari_histo.errors import UnsupportedModelError
    from napari_histo.models import save_spec

    save_spec(_spec(), tmp_path / "m")
    (tmp_path / "m" / "weights.safetensors").write_bytes(pickle.dumps(RunsCode(), protocol=2))
    with pytest.raises(UnsupportedModelError, match=r"is a Python pickle, not a safetensors file"):
        load_model(tmp_path / "m")
    torch.save({"w": torch.zeros(1)}, tmp_path / "m" / "weights.safetensors")
    with pytest.raises(UnsupportedModelError, match=r"is a PyTorch checkpoint"):
        load_model(tmp_path / "m")
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "config.json").write_text(json.dumps(_spec().to_wsinfer_config()))
    (tmp_path / "ws" / "torchscript_model.pt").write_bytes(b"PK\x03\x04")
    with pytest.raises(UnsupportedModelError, match=r"is a WSInfer model folder"):
        load_model(tmp_path / "ws")


def test_weights_with_nan_are_refused(tmp_path):
    spec = _spec()
    net = create_network(spec)
    with torch.no_grad():
        net.fc.weight[0, 0] = float("nan")
    save_model(net, spec, tmp_path / "m")
    with pytest.raises(ModelSpecError, match=r"NaN or infinite values \(first: \['fc\.weight'\]\)"):
        load_model(tmp_path / "m", device="cpu")


def test_local_weight_file_that_holds_code_is_refused(tmp_path):
    from napari_histo.errors import UnsupportedModelError

    torch.save({"fc.weight": RunsCode()}, tmp_path / "w.pth")
    with pytest.raises(UnsupportedModelError, match=r"holds Python objects besides tensors"):
        load_imagenet_weights(create_network(_spec()), tmp_path / "w.pth")
    with pytest.raises(FileNotFoundError, match="weight file not found"):
        load_imagenet_weights(create_network(_spec()), tmp_path / "nope.pth")
