"""Particles from a heatmap: local maxima above a threshold, then non-maximum suppression.

Candidates are voxels no lower than any of their 26 neighbours (cheap, and exact block by block with
one slice of overlap); suppression then enforces the particle radius: greedily by score, a candidate
closer than ``min_distance`` to an already kept one is dropped. Points exactly ``min_distance`` apart
both stay.
"""

from typing import Tuple

import numpy as np
from scipy.ndimage import maximum_filter
from scipy.spatial import cKDTree


def local_maxima(heatmap: np.ndarray, threshold: float) -> Tuple[np.ndarray, np.ndarray]:
    """((n, 3) x, y, z voxel positions, (n,) scores) of the 3x3x3 local maxima scoring at least ``threshold``."""
    peak = (heatmap >= threshold) & (heatmap == maximum_filter(heatmap, size=3, mode="nearest"))
    zyx = np.argwhere(peak)
    return zyx[:, ::-1].astype(np.float64), heatmap[peak].astype(np.float64)


def non_max_suppression(points_xyz: np.ndarray, scores: np.ndarray, min_distance: float) -> np.ndarray:
    """Indices of the points kept, best score first (ties: input order)."""
    points_xyz = np.asarray(points_xyz, dtype=np.float64).reshape(-1, 3)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    if len(order) == 0 or min_distance <= 0:
        return order
    tree = cKDTree(points_xyz)
    # "Closer than": the largest float below min_distance, since the tree's radius is inclusive.
    radius = np.nextafter(min_distance, 0)
    suppressed = np.zeros(len(points_xyz), dtype=bool)
    kept = []
    for index in order:
        if suppressed[index]:
            continue
        kept.append(index)
        suppressed[tree.query_ball_point(points_xyz[index], radius)] = True
    return np.array(kept, dtype=np.int64)
