"""The two figures a user judges picks by: the score histogram, and the picks' average beside random positions'."""

import os
from typing import Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..tomoio import atomic_path  # noqa: E402
from .average import LOW_SHELLS, AverageQuality  # noqa: E402


def write_score_histogram(path: os.PathLike, scores: np.ndarray, threshold: float, origin: str, title: str) -> None:
    """Scores of every heatmap peak (after suppression), the threshold drawn across."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0), constrained_layout=True)
    ax.hist(scores, bins=np.linspace(0, 1, 51), color="0.4")
    ax.axvline(threshold, color="crimson", linewidth=2)
    picked = int(np.sum(scores >= threshold))
    ax.set_xlabel("heatmap score of a peak")
    ax.set_ylabel("peaks")
    ax.set_title(f"{title}\n{picked} of {len(scores)} peaks at or above {threshold:.2f} ({origin})", fontsize=9)
    _save(fig, path)


def write_average_figure(path: os.PathLike, picks: Optional[AverageQuality], random: Optional[AverageQuality], title: str) -> None:
    """Central slices (xy, xz, yz) of the picks' average and of random positions' average, and both FSC curves."""
    fig, axes = plt.subplots(2, 4, figsize=(13, 6.4), constrained_layout=True)
    for row, (label, quality) in enumerate((("picks", picks), ("random positions", random))):
        if quality is None:
            for ax in axes[row, :3]:
                ax.set_axis_off()
            axes[row, 0].set_title(f"{label}: fewer than 2 boxes")
            continue
        average, centre = quality.average, quality.average.shape[0] // 2
        views = (("xy", average[centre]), ("xz", average[:, centre, :]), ("yz", average[:, :, centre]))
        low, high = np.percentile(average, [1, 99])
        for ax, (plane, image) in zip(axes[row, :3], views):
            ax.imshow(image, cmap="gray", vmin=low, vmax=high, origin="lower")  # y (or z) up, as MRC viewers
            ax.set_title(f"{label}, {plane}", fontsize=9)
            ax.set_axis_off()
        axes[row, 0].set_title(f"{label} ({quality.boxes} boxes), xy\ncentre contrast {quality.centre_contrast:.2f}, "
                               f"FSC shells {LOW_SHELLS[0]}-{LOW_SHELLS[1]} {quality.fsc_low:.2f}", fontsize=9)
    ax = axes[0, 3]
    for label, quality, colour in (("picks", picks, "crimson"), ("random", random, "0.5")):
        if quality is not None:
            ax.plot(np.arange(len(quality.fsc)), quality.fsc, color=colour, label=label)
    ax.axhline(0.143, color="0.7", linestyle=":")
    ax.set_xlabel("Fourier shell")
    ax.set_ylabel("half-set FSC")
    ax.set_ylim(-0.3, 1.0)
    ax.legend(fontsize=8)
    axes[1, 3].set_axis_off()
    fig.suptitle(title)
    _save(fig, path)


def _save(fig, path: os.PathLike) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
