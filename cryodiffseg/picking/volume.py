"""A tomogram as the picker sees it: standardised, at the picker's voxel size, read block by block.

Blocks are addressed in picker-grid voxels and read by absolute index with mirrored borders, so a
block's values never depend on where a chunk boundary fell: chunked and one-piece picking see the
same numbers. A tomogram at another voxel size is resampled on the fly (Gaussian anti-aliasing
when it is finer, then linear interpolation), so a memory-mapped volume is never loaded whole.
"""

import math
from typing import Sequence, Tuple

import numpy as np
from scipy.ndimage import gaussian_filter1d

from ..tomoio import Tomogram

# Standardised values are clipped here: gold fiducials and edge artefacts must not dominate a batch.
CLIP_STD = 5.0
_SAMPLE_SLICES = 24  # slices (evenly spaced) that the mean and standard deviation are measured on
_SAME_SCALE = 1e-3


def mirror_index(index: np.ndarray, size: int) -> np.ndarray:
    """Indices folded into [0, size) by mirroring at the borders (... 1 0 | 0 1 2 ... n-1 | n-1 n-2 ...)."""
    period = 2 * size
    folded = np.mod(index, period)
    return np.where(folded < size, folded, period - 1 - folded)


class PickerVolume:
    """Read-only view of ``tomogram`` on a grid of ``voxel_size_A`` voxels, standardised to mean 0, std 1."""

    def __init__(self, tomogram: Tomogram, voxel_size_A: float):
        self.tomogram = tomogram
        self.voxel_size_A = float(voxel_size_A)
        # Picker voxels per tomogram voxel; 1 means the grids coincide and blocks are plain reads.
        scale = tomogram.voxel_size / self.voxel_size_A
        self.scale = 1.0 if abs(scale - 1.0) < _SAME_SCALE else scale
        self.shape: Tuple[int, int, int] = tuple(max(1, int(round(n * self.scale))) for n in tomogram.shape)
        self.mean, self.std = _measure_standardisation(tomogram.data)

    def to_tomogram(self, points_xyz: np.ndarray) -> np.ndarray:
        """Picker-grid voxel coordinates (x, y, z) -> tomogram voxel coordinates (voxel centres aligned)."""
        return (np.asarray(points_xyz, dtype=np.float64) + 0.5) / self.scale - 0.5

    def from_tomogram(self, points_xyz: np.ndarray) -> np.ndarray:
        return (np.asarray(points_xyz, dtype=np.float64) + 0.5) * self.scale - 0.5

    def block(self, start: Sequence[int], stop: Sequence[int]) -> np.ndarray:
        """float32 (z, y, x) values of picker voxels [start, stop); outside the volume, its mirror image."""
        source = self.tomogram.data
        positions = []  # per axis: tomogram coordinates of the wanted picker voxels
        for axis in range(3):
            picker_index = mirror_index(np.arange(start[axis], stop[axis]), self.shape[axis])
            coordinate = (picker_index + 0.5) / self.scale - 0.5
            positions.append(np.clip(coordinate, 0, source.shape[axis] - 1))
        # Anti-aliasing when the tomogram is finer than the picker grid (the usual rule sigma = (f - 1) / 2).
        sigma = max(0.0, (1.0 / self.scale - 1.0) / 2.0)
        margin = int(math.ceil(4 * sigma)) + 1 if sigma > 0 else 0
        lows = [max(0, int(np.floor(p.min())) - margin) for p in positions]
        highs = [min(n, int(np.floor(p.max())) + 2 + margin) for p, n in zip(positions, source.shape)]
        values = np.asarray(source[lows[0] : highs[0], lows[1] : highs[1], lows[2] : highs[2]], dtype=np.float32)
        for axis in range(3):
            if sigma > 0:
                values = gaussian_filter1d(values, sigma, axis=axis, mode="reflect", truncate=4.0)
            values = _interpolate(values, positions[axis] - lows[axis], axis)
        values = (values - self.mean) / self.std
        return np.clip(values, -CLIP_STD, CLIP_STD, out=values)


def _interpolate(values: np.ndarray, coordinate: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation of ``values`` along ``axis`` at fractional indices (exact at whole ones)."""
    lower = np.floor(coordinate).astype(np.int64)
    weight = (coordinate - lower).astype(np.float32)
    upper = np.minimum(lower + 1, values.shape[axis] - 1)
    shape = [1, 1, 1]
    shape[axis] = -1
    weight = weight.reshape(shape)
    below = np.take(values, lower, axis=axis)
    if not weight.any():
        return below
    return below + weight * (np.take(values, upper, axis=axis) - below)


def _measure_standardisation(data: np.ndarray) -> Tuple[float, float]:
    """Mean and standard deviation of a tomogram, from evenly spaced slices (a memory map stays unread)."""
    chosen = np.unique(np.linspace(0, data.shape[0] - 1, min(_SAMPLE_SLICES, data.shape[0])).astype(int))
    sample = np.asarray(data[chosen], dtype=np.float64)
    std = float(sample.std())
    return float(sample.mean()), std if std > 0 else 1.0
