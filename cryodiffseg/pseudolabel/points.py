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

from ..errors import CryoDiffSegError
from .masks import circularity


@dataclass(frozen=True)
class PointConfig:
    """Filters of the pseudo-points (defaults are the published ones)."""

    min_circularity: float = 0.95
    min_area_nm_px: float = 30.0  # minimum area is this / voxel size in nm, in px
    min_membrane_distance: float = 10.0  # px, strictly more
    crowding_distance: float = 32.0  # px: both points of a pair this close or closer are dropped
    dedup_radius_nm: float = 15.0  # 3-D duplicates within ceil(this / voxel size in nm) px
    # "centre": each chain of duplicates (single linkage within the radius) is kept as its most central
    # point. "first": the reference's greedy pass in the order the points were found (the reference's is
    # its file system's order of slice files, ours is slice order), which keeps the first slice a particle
    # appears on, off-centre by most of a radius in z; a picker trained on such points learns two peaks
    # per particle, above and below its centre.
    dedup_mode: str = "centre"
    # Slice coordinates truncated to whole pixels before de-duplication, as the reference writes them (its
    # points sit up to a pixel up and left of the instance centre); off: the centroids as they are.
    integer_coordinates: bool = False

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
    """The points with no other point within ``min_distance`` (both points of a pair go; a pair at exactly
    that distance too, as in the reference)."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) < 2:
        return points
    pairs = cKDTree(points).query_pairs(min_distance, output_type="ndarray")
    crowded = np.zeros(len(points), dtype=bool)
    crowded[pairs.ravel()] = True
    return points[~crowded]


DEDUP_MODES = ("centre", "first")


def deduplicate(points_xyz: np.ndarray, radius: float, mode: str = "first") -> np.ndarray:
    """One point per particle seen on several slices or tiles (see ``PointConfig.dedup_mode``)."""
    points_xyz = np.asarray(points_xyz, dtype=np.float64).reshape(-1, 3)
    if mode == "centre":
        return _central_points(points_xyz, radius)
    if mode != "first":
        raise CryoDiffSegError(f"Unknown de-duplication '{mode}': use one of {', '.join(DEDUP_MODES)}.")
    tree = cKDTree(points_xyz)
    taken = np.zeros(len(points_xyz), dtype=bool)
    keep = []
    for index in range(len(points_xyz)):
        if taken[index]:
            continue
        keep.append(index)
        taken[tree.query_ball_point(points_xyz[index], radius)] = True
    return points_xyz[keep]


def _central_points(points_xyz: np.ndarray, radius: float) -> np.ndarray:
    """Per group of points chained within ``radius``, the member nearest the group's mean (in input order)."""
    if len(points_xyz) == 0:
        return points_xyz
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pairs = cKDTree(points_xyz).query_pairs(radius, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(points_xyz),) * 2)
    _, group = connected_components(graph, directed=False)
    keep = []
    for g in np.unique(group):
        members = np.flatnonzero(group == g)
        centre = points_xyz[members].mean(axis=0)
        keep.append(members[np.argmin(np.linalg.norm(points_xyz[members] - centre, axis=1))])
    return points_xyz[np.sort(keep)]
