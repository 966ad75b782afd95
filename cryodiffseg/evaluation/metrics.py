"""Agreement between a result and a reference: masks voxel by voxel, particle lists point by point.

One convention for every ratio: with nothing to count (0/0) it is 1, because nothing was missed and
nothing was wrong. So two empty masks (or two empty point lists) agree perfectly, while an empty
prediction against a non-empty truth scores Dice/F1 0, recall 0 and precision 1.

Points match when they are at most ``radius`` apart (inclusive: a pair exactly at the radius
matches), each prediction to at most one truth and each truth to at most one prediction. Among all
such one-to-one matchings the largest is taken, and among those the one with the smallest total
distance (optimal assignment), so a second prediction at an already matched truth is a false positive.
"""

from typing import Dict, Iterable, Optional

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ..errors import CryoDiffSegError

_SLICES_PER_READ = 16  # masks may be memory maps: count voxels a few slices at a time


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, and 1 when there is nothing to count."""
    return float(numerator) / float(denominator) if denominator else 1.0


def slice_counts(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(nz, 3) per-slice voxel counts: true positives, false positives, false negatives (nonzero = inside)."""
    if pred.shape != truth.shape:
        raise CryoDiffSegError(f"The masks differ in shape: prediction {pred.shape}, truth {truth.shape} (z, y, x).")
    if pred.ndim != 3:
        raise CryoDiffSegError(f"A mask must be a 3-D volume, got shape {pred.shape}.")
    counts = np.zeros((pred.shape[0], 3), dtype=np.int64)
    for start in range(0, pred.shape[0], _SLICES_PER_READ):
        p = np.asarray(pred[start : start + _SLICES_PER_READ]) != 0
        t = np.asarray(truth[start : start + _SLICES_PER_READ]) != 0
        counts[start : start + len(p)] = np.stack(
            [(p & t).sum(axis=(1, 2)), (p & ~t).sum(axis=(1, 2)), (~p & t).sum(axis=(1, 2))], axis=1
        )
    return counts


def segmentation_metrics(pred: np.ndarray, truth: np.ndarray, slices: Optional[Iterable[int]] = None) -> Dict:
    """Volumetric Dice, IoU, precision, recall and the per-slice mean Dice of two (z, y, x) masks.

    ``slices`` restricts every number to those z slices (e.g. the labelled ones); None means all.
    The per-slice mean Dice averages the Dice of each slice, a slice empty in both masks counting 1.
    """
    counts = slice_counts(pred, truth)
    chosen = np.arange(len(counts)) if slices is None else np.unique(np.asarray(list(slices), dtype=np.int64))
    if len(chosen) == 0:
        raise CryoDiffSegError("No slices were given to evaluate.")
    if chosen.min() < 0 or chosen.max() >= len(counts):
        raise CryoDiffSegError(f"Slices to evaluate must lie in 0-{len(counts) - 1}, got {chosen.min()}-{chosen.max()}.")
    counts = counts[chosen]
    tp, fp, fn = (int(v) for v in counts.sum(axis=0))
    per_slice = [ratio(2 * t, 2 * t + p + n) for t, p, n in counts]
    return {
        "dice": ratio(2 * tp, 2 * tp + fp + fn),
        "iou": ratio(tp, tp + fp + fn),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "per_slice_mean_dice": float(np.mean(per_slice)),
        "slices_evaluated": int(len(chosen)),
        "true_positive_voxels": tp,
        "false_positive_voxels": fp,
        "false_negative_voxels": fn,
        "per_slice_dice": {int(z): float(d) for z, d in zip(chosen, per_slice)},
    }


def match_points(pred: np.ndarray, truth: np.ndarray, radius: float) -> np.ndarray:
    """(k, 2) index pairs (prediction, truth) of the largest one-to-one matching within ``radius``.

    Pairs farther than ``radius`` are never matched. The assignment is solved exactly on each group
    of points linked by pairs within the radius, so memory follows the crowding, not the list sizes.
    """
    pred, truth = _as_points(pred), _as_points(truth)
    if len(pred) == 0 or len(truth) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    close = cKDTree(pred).sparse_distance_matrix(cKDTree(truth), max_distance=radius, output_type="ndarray")
    close = close[close["v"] <= radius]  # inclusive boundary, whatever the tree's rounding
    if len(close) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    rows, cols, dist = close["i"].astype(np.int64), close["j"].astype(np.int64), close["v"].astype(np.float64)
    # Groups: connected components of the bipartite graph (predictions first, then truths).
    n_pred = len(pred)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols + n_pred)), shape=(n_pred + len(truth),) * 2)
    _, component = connected_components(graph, directed=False)
    pairs = []
    for group in np.unique(component[rows]):
        edge = component[rows] == group
        r_ids, r = np.unique(rows[edge], return_inverse=True)
        c_ids, c = np.unique(cols[edge], return_inverse=True)
        # A forbidden pair costs more than any set of allowed ones, so the optimum first maximises
        # the number of allowed pairs, then minimises their total distance.
        forbidden = (radius + 1.0) * (min(len(r_ids), len(c_ids)) + 1)
        cost = np.full((len(r_ids), len(c_ids)), forbidden)
        cost[r, c] = dist[edge]
        best_r, best_c = linear_sum_assignment(cost)
        allowed = cost[best_r, best_c] < forbidden
        pairs.append(np.column_stack([r_ids[best_r[allowed]], c_ids[best_c[allowed]]]))
    return np.concatenate(pairs).astype(np.int64)


def picking_metrics(pred: np.ndarray, truth: np.ndarray, radius: float) -> Dict:
    """Precision, recall and F1 of predicted particle centres against true ones (one-to-one within ``radius``)."""
    if not np.isfinite(radius) or radius < 0:
        raise CryoDiffSegError(f"The matching radius must be a non-negative number of voxels, got {radius}.")
    pred, truth = _as_points(pred), _as_points(truth)
    pairs = match_points(pred, truth, radius)
    tp = len(pairs)
    fp, fn = len(pred) - tp, len(truth) - tp
    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    distances = np.linalg.norm(pred[pairs[:, 0]] - truth[pairs[:, 1]], axis=1) if tp else np.zeros(0)
    return {
        "precision": precision,
        "recall": recall,
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
        "predicted": len(pred),
        "true": len(truth),
        "mean_matched_distance": float(distances.mean()) if tp else None,
        "radius": float(radius),
    }


def _as_points(points) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.size == 0:
        return np.zeros((0, 3))
    if points.ndim != 2 or points.shape[1] != 3:
        raise CryoDiffSegError(f"Points must be an (n, 3) array of x, y, z, got shape {points.shape}.")
    return points
