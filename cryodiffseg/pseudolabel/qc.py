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
    canvas: Optional[np.ndarray],
    mask: np.ndarray,
    points_xy: np.ndarray,
    sheet_evidence: Optional[np.ndarray] = None,
) -> None:
    """Panels for one slice: preprocessed slice, attention canvas and sheet evidence (those computed),
    membrane mask over the slice, pseudo-points."""
    panels = [("slice (preprocessed)", lambda ax: ax.imshow(image, cmap="gray"))]
    if canvas is not None:
        panels.append(("attention canvas (z-corrected)", lambda ax: ax.imshow(canvas, cmap="magma")))
    if sheet_evidence is not None:
        top = max(float(np.percentile(sheet_evidence, 99.5)), 1e-6)
        panels.append(("sheet evidence (noise levels)", lambda ax: ax.imshow(sheet_evidence, cmap="magma", vmin=0, vmax=top)))

    def overlay(ax):
        ax.imshow(image, cmap="gray")
        ax.imshow(np.ma.masked_where(mask == 0, mask), cmap="autumn", alpha=0.55, interpolation="nearest")

    def circles(ax):
        ax.imshow(image, cmap="gray")
        if len(points_xy):
            ax.scatter(points_xy[:, 0], points_xy[:, 1], s=40, facecolors="none", edgecolors="cyan", linewidths=1.2)

    panels.append((f"membrane pseudo-mask ({100 * mask.mean():.1f}% of slice)", overlay))
    panels.append((f"particle pseudo-points ({len(points_xy)} near this slice)", circles))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4.4), constrained_layout=True)
    for ax, (label, draw) in zip(axes, panels):
        draw(ax)
        ax.set_title(label)
        ax.set_axis_off()
    fig.suptitle(title)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
