"""Quality-control figure per slab: what the user checks before trusting the pseudo-labels."""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..tomoio import atomic_path  # noqa: E402


def write_slab_figure(
    path: os.PathLike,
    title: str,
    image: np.ndarray,
    canvas: np.ndarray,
    mask: np.ndarray,
    points_xy: np.ndarray,
) -> None:
    """Four panels for one slice: preprocessed slice, canvas, membrane mask over the slice, pseudo-points."""
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.4), constrained_layout=True)
    axes[0].imshow(image, cmap="gray")
    axes[0].set_title("slice (preprocessed)")
    axes[1].imshow(canvas, cmap="magma")
    axes[1].set_title("canvas (z-corrected)")
    axes[2].imshow(image, cmap="gray")
    axes[2].imshow(np.ma.masked_where(mask == 0, mask), cmap="autumn", alpha=0.55, interpolation="nearest")
    axes[2].set_title(f"membrane pseudo-mask ({100 * mask.mean():.1f}% of slice)")
    axes[3].imshow(image, cmap="gray")
    if len(points_xy):
        axes[3].scatter(points_xy[:, 0], points_xy[:, 1], s=40, facecolors="none", edgecolors="cyan", linewidths=1.2)
    axes[3].set_title(f"macromolecule pseudo-points ({len(points_xy)} near this slice)")
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle(title)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
