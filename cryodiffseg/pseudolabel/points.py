"""Macromolecule pseudo-points: centres of round, large enough instances away from membranes.

Points too close to each other within a patch are ambiguous (two particles or one split in two) and are
all dropped; the same particle seen on neighbouring slices and overlapping patches is then kept once.
"""

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree
from skimage.measure import regionprops

from .masks import circularity


@dataclass(frozen=True)
class PointConfig:
    """Filters of the pseudo-points (defaults are the published ones)."""

    min_circularity: float = 0.95
    min_area_nm_px: float = 30.0  # minimum area is this / voxel size in nm, in px
    min_membrane_distance: float = 10.0  # px, strictly more
    crowding_distance: float = 32.0  # px: both points of a closer pair are dropped
    dedup_radius_nm: float = 15.0  # 3-D duplicates within ceil(this / voxel size in nm) px

    def dedup_radius(self, voxel_size_nm: float) -> int:
        return math.ceil(self.dedup_radius_nm / voxel_size_nm)


def patch_points(
    macromolecule_labels: np.ndarray,
    membrane_mask: np.ndarray,
    voxel_size_nm: float,
    config: PointConfig = PointConfig(),
) -> np.ndarray:
    """(n, 2) x, y patch-pixel centres of the round, large enough instances far from membranes.

    Crowded pairs are still in; ``drop_crowded`` removes them.
    """
    min_area = config.min_area_nm_px / voxel_size_nm
    membrane_mask = np.asarray(membrane_mask, dtype=bool)
    # Distance of every pixel to the nearest membrane pixel; no membrane: nothing is near one.
    to_membrane = ndi.distance_transform_edt(~membrane_mask) if membrane_mask.any() else None
    points = []
    for region in regionprops(np.asarray(macromolecule_labels)):
        if circularity(region) < config.min_circularity or region.area < min_area:
            continue
        row, col = region.centroid
        if to_membrane is not None and to_membrane[int(row), int(col)] <= config.min_membrane_distance:
            continue
        points.append((col, row))
    return np.array(points, dtype=np.float64).reshape(-1, 2)


def drop_crowded(points: np.ndarray, min_distance: float) -> np.ndarray:
    """The points with no other point closer than ``min_distance`` (both points of a close pair go)."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) < 2:
        return points
    # query_pairs includes pairs at exactly r; the next float below keeps "closer than" strict.
    pairs = cKDTree(points).query_pairs(np.nextafter(min_distance, 0), output_type="ndarray")
    crowded = np.zeros(len(points), dtype=bool)
    crowded[pairs.ravel()] = True
    return points[~crowded]


def deduplicate(points_xyz: np.ndarray, radius: float) -> np.ndarray:
    """Greedy de-duplication in input order: keep a point not yet taken, take all points within ``radius``."""
    points_xyz = np.asarray(points_xyz, dtype=np.float64).reshape(-1, 3)
    tree = cKDTree(points_xyz)
    taken = np.zeros(len(points_xyz), dtype=bool)
    keep = []
    for index in range(len(points_xyz)):
        if taken[index]:
            continue
        keep.append(index)
        taken[tree.query_ball_point(points_xyz[index], radius)] = True
    return points_xyz[keep]
