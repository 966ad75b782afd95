"""Target heatmaps: a Gaussian blob at every particle centre, the picture the network learns to paint.

The blob's sigma is a third of the particle radius, so it fades out at the particle's edge and the
blobs of touching particles stay separable by their maxima. Overlapping blobs take the maximum, not
the sum, so a crowd never outscores a centre. (A blob stretched along z, to allow for pseudo-points
that sit off the particle centre in z, was measured and picked worse: F1 0.60 against 0.71.)
"""

import numpy as np

SIGMA_PER_RADIUS = 1.0 / 3.0
_EXTENT_SIGMAS = 3.0  # a blob is drawn out to this many sigmas; beyond, it is below 1.2 %


def particle_diameter_voxels(diameter_nm: float, voxel_size_A: float) -> float:
    return diameter_nm * 10.0 / voxel_size_A


def heatmap_sigma(radius_voxels: float) -> float:
    return radius_voxels * SIGMA_PER_RADIUS


def slice_heatmap(points_xyz: np.ndarray, z: float, corner_yx, size: int, sigma: float) -> np.ndarray:
    """(size, size) float32 target of slice ``z`` over the square whose first pixel is ``corner_yx``.

    A point at distance dz from the slice contributes exp(-dz^2 / 2 sigma^2) times its in-plane blob:
    the section of the 3-D Gaussian through this slice.
    """
    target = np.zeros((size, size), dtype=np.float32)
    if len(points_xyz) == 0:
        return target
    reach = _EXTENT_SIGMAS * sigma
    y0, x0 = corner_yx
    x, y, pz = points_xyz[:, 0], points_xyz[:, 1], points_xyz[:, 2]
    near = (
        (np.abs(pz - z) <= reach)
        & (x >= x0 - reach) & (x <= x0 + size - 1 + reach)
        & (y >= y0 - reach) & (y <= y0 + size - 1 + reach)
    )
    rows = np.arange(y0, y0 + size, dtype=np.float32)[:, None]
    cols = np.arange(x0, x0 + size, dtype=np.float32)[None, :]
    for px, py, point_z in points_xyz[near]:
        distance2 = (rows - py) ** 2 + (cols - px) ** 2 + (z - point_z) ** 2
        np.maximum(target, np.exp(-distance2 / (2 * sigma**2)), out=target)
    return target
