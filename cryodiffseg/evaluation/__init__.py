"""Evaluation of masks and particle picks against a reference (Dice, IoU, per-slice Dice; picking F1)."""

from .inputs import read_mask, read_points
from .metrics import match_points, picking_metrics, segmentation_metrics
from .report import evaluate_mask, evaluate_points, format_table

__all__ = [
    "evaluate_mask",
    "evaluate_points",
    "format_table",
    "match_points",
    "picking_metrics",
    "read_mask",
    "read_points",
    "segmentation_metrics",
]
