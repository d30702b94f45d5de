"""Do two datasets or stain variants separate? Features → PCA → KMeans → matched to the groups.

The literature's check (recipe D): ImageNet backbone features (classifier
removed) reduced by PCA, clustered by k-means++, clusters matched to the
known groups with the Hungarian algorithm; reports accuracy, adjusted Rand
index and silhouette, for raw pixels and for backbone features, plus a 2-D
scatter plot.  High scores mean the groups differ (e.g. in stain) and should
be normalised before they are merged.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["backbone", "cluster_folders", "cluster_report", "extract_features", "hungarian_accuracy"]


def hungarian_accuracy(groups: np.ndarray, clusters: np.ndarray) -> float:
    """Accuracy of the best one-to-one matching of cluster ids to group ids."""
    from scipy.optimize import linear_sum_assignment

    k = int(max(groups.max(), clusters.max())) + 1
    table = np.zeros((k, k), dtype=np.int64)
    np.add.at(table, (clusters, groups), 1)
    rows, cols = linear_sum_assignment(-table)
    return float(table[rows, cols].sum() / len(groups))


def cluster_report(
    features: np.ndarray, groups: np.ndarray, pca_dims: int = 2, seed: int = 0
) -> dict[str, Any]:
    """PCA to ``pca_dims`` then KMeans with as many clusters as groups; scores and the 2-D embedding."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import adjusted_rand_score, silhouette_score

    features = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    dims = min(pca_dims, *features.shape)
    embedded = PCA(n_components=dims, random_state=seed).fit_transform(features)
    k = len(np.unique(groups))
    clusters = KMeans(n_clusters=k, init="k-means++", n_init=10, random_state=seed).fit_predict(embedded)
    return {
        "accuracy": hungarian_accuracy(groups, clusters),
        "ari": float(adjusted_rand_score(groups, clusters)),
        "silhouette": float(silhouette_score(embedded, clusters)) if k > 1 else float("nan"),
        "n": int(len(groups)),
        "embedding": embedded[:, :2],
        "clusters": clusters,
    }


def extract_features(
    network: Any,
    images: np.ndarray,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int = 64,
    device: str = "cpu",
) -> np.ndarray:
    """Pooled backbone features (n, d) of uint8 patches (n, rows, cols, 3)."""
    import torch

    from training.ssl import pooled_features

    network = network.eval().to(device)
    m = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=device).view(1, 3, 1, 1)
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = (
                torch.from_numpy(images[start : start + batch_size]).to(device).permute(0, 3, 1, 2).float()
                / 255
            )
            out.append(pooled_features(network, (x - m) / s).cpu().numpy())
    return np.concatenate(out)


def run_clustering(
    network: Any,
    images: np.ndarray,
    groups: np.ndarray,
    group_names: Sequence[str],
    mean: Sequence[float],
    std: Sequence[float],
    out_dir: Path,
    pca_dims: int = 2,
    device: str = "cpu",
) -> dict[str, dict[str, Any]]:
    """Reports for raw pixels and backbone features; writes clustering.json and clustering.png."""
    from training.report import write_json

    reports = {
        "pixels": cluster_report(images.reshape(len(images), -1) / 255.0, groups, pca_dims),
        "features": cluster_report(
            extract_features(network, images, mean, std, device=device), groups, pca_dims
        ),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_clusters(reports, groups, group_names, out_dir / "clustering.png")
    scores = {
        space: {k: v for k, v in r.items() if isinstance(v, (int, float))} for space, r in reports.items()
    }
    write_json({"groups": list(group_names), **scores}, out_dir / "clustering.json")
    return scores


def plot_clusters(
    reports: dict[str, dict[str, Any]], groups: np.ndarray, names: Sequence[str], path: Path
) -> Path:
    from training.plots import _pyplot, _save

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(reports), figsize=(5 * len(reports), 4.5))
    for ax, (space, r) in zip(np.atleast_1d(axes), reports.items()):
        emb = r["embedding"]
        for g, name in enumerate(names):
            pts = emb[groups == g]
            ax.scatter(pts[:, 0], pts[:, 1] if pts.shape[1] > 1 else np.zeros(len(pts)), s=6, label=name)
        ax.set_title(
            f"{space}: acc {r['accuracy']:.2f}  ARI {r['ari']:.2f}  silhouette {r['silhouette']:.2f}"
        )
        ax.set(xlabel="PC 1", ylabel="PC 2")
        ax.legend()
    return _save(fig, plt, path)


def cluster_folders(
    folders: Sequence[Path],
    *,
    architecture: str | None = None,
    weights: str = "none",
    max_samples: int = 500,
    out_dir: Path = Path("clustering"),
    seed: int = 0,
) -> dict[str, Any]:
    """``histo cluster A/ B/``: patches of each folder (recursively) form one group.

    ``weights`` is ``"none"`` (random init: a warning, the features mean little),
    a local ImageNet weight file (loaded as training loads it), or a model
    directory (``model.json`` + ``weights.safetensors``, e.g. a trained or SSL
    backbone; its own architecture and normalisation are used).
    """
    from training.data import IMAGE_EXTENSIONS, DataError, decode_image

    network, mean, std = backbone(architecture, weights)
    if len(folders) < 2:
        raise DataError(f"{len(folders)} folder given; clustering compares two or more folders of patches")
    rng = np.random.default_rng(seed)
    images, groups = [], []
    for g, folder in enumerate(folders):
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise DataError(f"{folder}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in it or below it")
        for p in rng.permutation(np.array(files, dtype=object))[:max_samples]:
            images.append(decode_image(p, 96))
            groups.append(g)
    return run_clustering(
        network, np.stack(images), np.array(groups), [f.name for f in folders], mean, std, out_dir
    )


_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
DEFAULT_ARCHITECTURE = "resnet18"


def backbone(
    architecture: str | None, weights: str | Path = "none"
) -> tuple[Any, tuple[float, ...], tuple[float, ...]]:
    """A feature extractor (classifier removed) and its normalisation mean/std.

    A weight file is loaded with :func:`~napari_histo.models.weights.load_imagenet_weights`
    into the full classifier (so its head tensors pair up), then the head is removed.
    A model directory is loaded with :func:`~napari_histo.models.load_model`.
    """
    import timm

    from napari_histo.models import ModelSpecError, load_model
    from napari_histo.models.registry import check_architecture
    from napari_histo.models.spec import SPEC_FILE, load_spec
    from napari_histo.models.weights import LOCAL_IMAGENET_FILES, load_imagenet_weights

    path = Path(str(weights)).expanduser()
    if str(weights) not in ("none", "") and path.is_dir():
        if not (path / SPEC_FILE).exists():
            raise ModelSpecError(
                f"{path}: a folder without {SPEC_FILE}; --weights takes a weight file (.pth/.safetensors) "
                "or a model directory (model.json + weights.safetensors)"
            )
        spec = load_spec(path)
        if architecture and architecture != spec.architecture:
            raise ModelSpecError(
                f"--architecture {architecture} but the model directory {path} holds a {spec.architecture}; "
                "leave --architecture out to use the directory's"
            )
        network = load_model(path, "cpu", spec=spec)
        if not hasattr(network, "reset_classifier"):
            raise ModelSpecError(
                f"{path}: a {spec.architecture} segmentation model; clustering needs a classifier backbone"
            )
        network.reset_classifier(0)
        return network, tuple(spec.mean), tuple(spec.std)
    if str(weights) in ("none", ""):
        architecture = architecture or DEFAULT_ARCHITECTURE
        check_architecture(architecture)
        warnings.warn(
            f"no --weights: the {architecture} backbone is randomly initialised, so its feature scores mean "
            "nothing (only the pixel scores do). Give --weights a local ImageNet file (e.g. "
            + ", ".join(f"{v['file']} for --architecture {k}" for k, v in LOCAL_IMAGENET_FILES.items())
            + ") or a trained model directory (model.json + weights.safetensors).",
            UserWarning,
            stacklevel=3,
        )
        return timm.create_model(architecture, pretrained=False, num_classes=0), *_IMAGENET
    if architecture is None:  # a shipped file names its architecture
        known_arch = [k for k, v in LOCAL_IMAGENET_FILES.items() if v["file"] == path.name]
        architecture = known_arch[0] if known_arch else DEFAULT_ARCHITECTURE
    check_architecture(architecture)
    network = timm.create_model(architecture, pretrained=False)  # with its ImageNet head, as in the file
    load_imagenet_weights(network, path)
    network.reset_classifier(0)
    known = LOCAL_IMAGENET_FILES.get(architecture, {})
    return network, tuple(known.get("mean", _IMAGENET[0])), tuple(known.get("std", _IMAGENET[1]))
