"""Learning-curve plot: whole-epoch ticks on the x axis, and the PNG is written."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from training.plots import learning_curves_figure, plot_learning_curves


def _history(epochs: int) -> list[dict[str, object]]:
    return [
        {
            "global_epoch": e,
            "phase": "head" if e < 2 else "all",
            "train_loss": 1.0 / (e + 1),
            "val_loss": 1.2 / (e + 1),
            "val_accuracy": 0.5 + 0.1 * e,
        }
        for e in range(epochs)
    ]


@pytest.mark.parametrize("epochs", [1, 3, 5])
def test_learning_curve_x_ticks_are_whole_epochs(epochs: int) -> None:
    import matplotlib.pyplot as plt

    fig = learning_curves_figure(_history(epochs))
    try:
        fig.canvas.draw()
        for ax in fig.axes:
            ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
            assert ticks and all(float(t).is_integer() for t in ticks), ticks
            labels = [t.get_text().replace("\u2212", "-") for t in ax.get_xticklabels() if t.get_text()]
            assert labels and all(label.lstrip("-").isdigit() for label in labels), labels
    finally:
        plt.close(fig)


def test_plot_learning_curves_writes_a_png(tmp_path: Path) -> None:
    path = plot_learning_curves(_history(3), tmp_path / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
