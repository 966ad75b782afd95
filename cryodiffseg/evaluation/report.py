"""Evaluating result files against reference files: JSON-ready dicts and a plain-text table of them."""

import logging
import os
from pathlib import Path
from typing import Iterable, Mapping, Optional

from .inputs import read_mask, read_points
from .metrics import picking_metrics, segmentation_metrics

log = logging.getLogger("cryodiffseg")


def evaluate_mask(pred_path: os.PathLike, truth_path: os.PathLike, slices: Optional[Iterable[int]] = None) -> dict:
    """Segmentation metrics of a predicted mask MRC against a reference mask MRC (same shape required)."""
    pred, pred_voxel = read_mask(pred_path)
    truth, truth_voxel = read_mask(truth_path)
    if abs(pred_voxel - truth_voxel) > 1e-3 * max(pred_voxel, truth_voxel, 1e-9):
        log.warning("The masks state different voxel sizes (%.3f A and %.3f A); comparing voxel by voxel", pred_voxel, truth_voxel)
    metrics = segmentation_metrics(pred, truth, slices)
    return {"prediction": str(Path(pred_path)), "truth": str(Path(truth_path)), "shape_zyx": list(pred.shape), **metrics}


def evaluate_points(pred_csv: os.PathLike, truth_csv: os.PathLike, radius: float) -> dict:
    """Picking metrics of predicted particle centres against reference ones, matched within ``radius`` voxels."""
    metrics = picking_metrics(read_points(pred_csv), read_points(truth_csv), radius)
    return {"prediction": str(Path(pred_csv)), "truth": str(Path(truth_csv)), **metrics}


def format_table(results: Mapping) -> str:
    """Aligned ``name  value`` lines of the single-valued entries of an evaluation dict."""
    rows = [(str(name), _format_value(value)) for name, value in results.items() if not isinstance(value, (dict, list))]
    width = max((len(name) for name, _ in rows), default=0)
    return "".join(f"{name.ljust(width)}  {value}\n" for name, value in rows)


def _format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if value is None:
        return "-"
    return str(value)
