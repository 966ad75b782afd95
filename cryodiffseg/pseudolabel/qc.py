"""Quality-control figure per slab: what the user checks before trusting the pseudo-labels."""

import os
from typing import Optional

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
    sheet_evidence: Optional[np.ndarray] = None,
) -> None:
    """Panels for one slice: preprocessed slice, canvas, sheet evidence (when used), membrane mask over the
    slice, pseudo-points."""
    panels = 5 if sheet_evidence is not None else 4
    fig, axes = plt.subplots(1, panels, figsize=(4 * panels, 4.4), constrained_layout=True)
    axes = list(axes)
    axes[0].imshow(image, cmap="gray")
    axes[0].set_title("slice (preprocessed)")
    axes[1].imshow(canvas, cmap="magma")
    axes[1].set_title("attention canvas (z-corrected)")
    if sheet_evidence is not None:
        evidence_axis = axes.pop(2)
        evidence_axis.imshow(sheet_evidence, cmap="magma", vmin=0, vmax=max(float(np.percentile(sheet_evidence, 99.5)), 1e-6))
        evidence_axis.set_title("sheet evidence (noise levels)")
    axes[2].imshow(image, cmap="gray")
    axes[2].imshow(np.ma.masked_where(mask == 0, mask), cmap="autumn", alpha=0.55, interpolation="nearest")
    axes[2].set_title(f"membrane pseudo-mask ({100 * mask.mean():.1f}% of slice)")
    axes[3].imshow(image, cmap="gray")
    if len(points_xy):
        axes[3].scatter(points_xy[:, 0], points_xy[:, 1], s=40, facecolors="none", edgecolors="cyan", linewidths=1.2)
    axes[3].set_title(f"macromolecule pseudo-points ({len(points_xy)} near this slice)")
    for ax in fig.axes:
        ax.set_axis_off()
    fig.suptitle(title)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
