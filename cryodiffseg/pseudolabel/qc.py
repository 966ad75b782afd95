"""Quality-control figure per slab: what the user checks before trusting the pseudo-labels.

Slices are drawn as MRC viewers (IMOD, ChimeraX, Scipion) show them: y up, row 0 of the array at the bottom
(matplotlib puts it at the top unless origin="lower"), so the figure and those viewers agree.
"""

import os
from typing import Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..tomoio import atomic_path  # noqa: E402


SLICE_ORIGIN = "lower"  # y up, as in MRC viewers


def write_slab_figure(path: os.PathLike, title: str, *args, **kwargs) -> None:
    """Write slab_figure(title, ...) as a PNG."""
    fig = slab_figure(title, *args, **kwargs)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def slab_figure(
    title: str,
    image: np.ndarray,
    canvas: Optional[np.ndarray],
    mask: np.ndarray,
    points_xy: np.ndarray,
    sheet_evidence: Optional[np.ndarray] = None,
) -> "plt.Figure":
    """Panels for one slice: preprocessed slice, attention canvas and sheet evidence (those computed),
    membrane mask over the slice, pseudo-points (x, y in voxels of the slice)."""
    panels = [("slice (preprocessed)", lambda ax: ax.imshow(image, cmap="gray", origin=SLICE_ORIGIN))]
    if canvas is not None:
        panels.append(("attention canvas (z-corrected)", lambda ax: ax.imshow(canvas, cmap="magma", origin=SLICE_ORIGIN)))
    if sheet_evidence is not None:
        top = max(float(np.percentile(sheet_evidence, 99.5)), 1e-6)
        panels.append(("sheet evidence (noise levels)",
                       lambda ax: ax.imshow(sheet_evidence, cmap="magma", vmin=0, vmax=top, origin=SLICE_ORIGIN)))

    def overlay(ax):
        ax.imshow(image, cmap="gray", origin=SLICE_ORIGIN)
        ax.imshow(np.ma.masked_where(mask == 0, mask), cmap="autumn", alpha=0.55, interpolation="nearest",
                  origin=SLICE_ORIGIN)

    def circles(ax):
        ax.imshow(image, cmap="gray", origin=SLICE_ORIGIN)
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
    return fig
