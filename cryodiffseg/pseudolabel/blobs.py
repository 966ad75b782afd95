"""Particle evidence from the image itself: dark blobs of the particle's size in 3-D.

A dense macromolecule is a dark blob; the scale-normalised Laplacian of Gaussian, sigma^2 (dxx + dyy + dzz)
of the Gaussian-smoothed density, peaks at the centre of a dark sphere of radius r for sigma = r / sqrt(3),
and answers less to smaller or larger blobs and to sheets and filaments. Its local maxima, at least one
radius apart, above ``threshold`` noise levels (the median |response| of the window) are particle centres,
if they answer at least as strongly at the particle's scale as at ``smaller_scale`` of it: a smaller
complex's response peaks at its own, smaller scale (scale selection).

The pseudo-points are the centres that cut the slab; the same detector on the slices beyond the slab, which
no model trains on, gives held-out points that calibrate the picker's score threshold.
"""

import logging
import math
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np
from scipy import ndimage as ndi

from ..errors import CryoDiffSegError
from ..picking.peaks import non_max_suppression
from ..tomoio import release_pages
from .sheets import slice_windows

log = logging.getLogger("cryodiffseg")

_TRUNCATE = 4.0
_PEAK_CHUNK_SLICES = 32  # slices of the blob measure searched for maxima at a time


@dataclass(frozen=True)
class BlobConfig:
    """Size and threshold of the particle evidence (measured defaults, BENCHMARKS.md)."""

    diameter_nm: float = 25.0  # the particle to find (a ribosome)
    threshold: float = 8.0  # local maxima of the blob measure above this many noise levels
    smaller_scale: float = 0.5  # a particle answers at least as strongly at its scale as at this fraction of it
    calibration_nm: float = 50.0  # held-out slices on each side of the slab, beyond half a particle

    def validate(self) -> None:
        if not self.diameter_nm > 0 or not self.threshold > 0 or not self.calibration_nm >= 0:
            raise CryoDiffSegError("The particle diameter and blob threshold must be positive, the calibration depth not negative.")
        if not 0 < self.smaller_scale < 1:
            raise CryoDiffSegError(f"The smaller blob scale must be a fraction in (0, 1), got {self.smaller_scale}.")


@dataclass
class BlobPoints:
    """Pseudo-points (cutting the slabs) and held-out calibration points, (n, 3) x, y, z voxels, with scores."""

    points: np.ndarray
    scores: np.ndarray
    calibration_points: np.ndarray
    calibration_scores: np.ndarray
    calibration_slices: List[int]
    radius_px: float
    noise_levels: List[float]


def blob_measure(volume: np.ndarray, sigma: float, chunk_voxels: int = 2**23, keep: slice = slice(None)) -> np.ndarray:
    """sigma^2 x the Laplacian of the Gaussian-smoothed volume (positive at dark blobs), float32, by row blocks.

    Only the slices ``keep`` are returned (the others are still read, for the kernel's reach), and the volume
    is read and converted one row block at a time: a memory-mapped tomogram of any data type is never held whole.
    """
    depth, height, width = volume.shape
    kept = range(depth)[keep]
    margin = int(_TRUNCATE * sigma + 0.5)
    # at least twice the margin per block: thinner blocks would recompute their margins many times over
    rows = max(2 * margin, 1, chunk_voxels // max(depth * width, 1) - 2 * margin)
    out = np.empty((len(kept), height, width), dtype=np.float32)
    for y0 in range(0, height, rows):
        y1 = min(height, y0 + rows)
        a, b = max(0, y0 - margin), min(height, y1 + margin)
        block = np.array(volume[:, a:b], dtype=np.float32)
        release_pages(volume)  # a memory-mapped tomogram's pages go back to the page cache
        laplacian = sum(ndi.gaussian_filter(block, sigma, order=order, mode="reflect", truncate=_TRUNCATE)
                        for order in ((2, 0, 0), (0, 2, 0), (0, 0, 2)))
        out[:, y0:y1] = laplacian[keep, y0 - a : y1 - a] * sigma**2
    return out


def blob_measure_at(volume: np.ndarray, sigma: float, points_zyx: np.ndarray) -> np.ndarray:
    """``blob_measure`` at a few voxels only, from a cube of the kernel's reach around each: the same values at
    a small fraction of the cost of the whole volume."""
    margin = int(_TRUNCATE * sigma + 0.5)
    values = np.empty(len(points_zyx), dtype=np.float32)
    for index, point in enumerate(np.asarray(points_zyx, dtype=int).reshape(-1, 3)):
        low = np.maximum(point - margin, 0)
        high = np.minimum(point + margin + 1, volume.shape)
        values[index] = blob_measure(volume[tuple(slice(a, b) for a, b in zip(low, high))], sigma)[tuple(point - low)]
    return values


def blob_peaks(measure: np.ndarray, radius: float, threshold: float, noise: float = 1.0) -> Tuple[np.ndarray, np.ndarray]:
    """((n, 3) x, y, z, (n,) scores) of the local maxima of ``measure / noise`` above ``threshold``, no two
    closer than ``radius``. Candidates are found by chunks of slices with the filter's reach around each: the
    same maxima as from the whole volume, for a chunk's memory."""
    size = max(3, 2 * int(radius / 2) + 1)  # candidates: maxima of a neighbourhood of half a radius
    reach, depth = size // 2, measure.shape[0]
    candidates, values = [np.empty((0, 3), dtype=np.int64)], [np.empty(0, dtype=np.float32)]
    for z0 in range(0, depth, _PEAK_CHUNK_SLICES):
        z1 = min(depth, z0 + _PEAK_CHUNK_SLICES)
        a, b = max(0, z0 - reach), min(depth, z1 + reach)
        chunk = measure[a:b] / noise
        peak = (chunk >= threshold) & (chunk == ndi.maximum_filter(chunk, size=size, mode="nearest"))
        inner = slice(z0 - a, z1 - a)
        candidates.append(np.argwhere(peak[inner]) + [z0, 0, 0])
        values.append(chunk[inner][peak[inner]])
    zyx = np.concatenate(candidates)
    points, scores = zyx[:, ::-1].astype(np.float64), np.concatenate(values).astype(np.float64)
    kept = non_max_suppression(points, scores, radius)
    return points[kept], scores[kept]


def inside_margin(points_xyz: np.ndarray, shape_zyx: Sequence[int], margin: float) -> np.ndarray:
    """Boolean mask of the points at least ``margin`` voxels from every face of the volume."""
    points_xyz = np.asarray(points_xyz, dtype=np.float64).reshape(-1, 3)
    upper = np.array(shape_zyx[::-1], dtype=np.float64) - 1 - margin
    return np.all((points_xyz >= margin) & (points_xyz <= upper), axis=1)


def held_out_slices(labelled: Sequence[int], radius: float, calibration_depth: int, depth: int) -> List[int]:
    """Slices beyond a particle radius of the labelled ones and within ``calibration_depth`` more: no particle
    centred there cuts a labelled slice."""
    reach = int(math.ceil(radius))
    near = {z for s in labelled for z in range(s - reach, s + reach + 1)}
    around = {z for s in labelled for z in range(s - reach - calibration_depth, s + reach + calibration_depth + 1) if 0 <= z < depth}
    return sorted(around - near)


def detect_blobs(volume: np.ndarray, first: int, last: int, voxel_size_nm: float, config: BlobConfig) -> Tuple[np.ndarray, np.ndarray, float]:
    """(centres x, y, z, scores in noise levels, noise level) of the particle-sized blobs of slices [first, last).

    The window is measured a radius wider on each side, so that a blob centred just outside it is seen as
    such and not as a maximum on its last slice.
    """
    radius = config.diameter_nm / 2 / voxel_size_nm
    sigma = radius / math.sqrt(3.0)
    nz = volume.shape[0]
    reach = int(math.ceil(radius))
    window_first, window_last = max(0, first - reach), min(nz, last + reach)
    margin = int(_TRUNCATE * sigma + 0.5)
    read_first, read_last = max(0, window_first - margin), min(nz, window_last + margin)
    block = volume[read_first:read_last]  # a view: read by row blocks, never copied whole
    crop = slice(window_first - read_first, window_last - read_first)
    measure = blob_measure(block, sigma, keep=crop)
    noise = float(np.median(np.abs(measure[:, ::4, ::4]))) or 1.0  # a constant volume has no blobs at all
    found, scores = blob_peaks(measure, radius, config.threshold, noise)
    at = found[:, ::-1].astype(int)  # z, y, x within the window
    smaller = blob_measure_at(block, sigma * config.smaller_scale, at + [window_first - read_first, 0, 0])
    particle_sized = measure[tuple(at.T)] >= smaller
    found, scores = found[particle_sized], scores[particle_sized]
    found[:, 2] += window_first
    inside = (found[:, 2] >= first) & (found[:, 2] < last) & inside_margin(found, volume.shape, radius)
    return found[inside], scores[inside], noise


def particle_points(volume: np.ndarray, z_list: Sequence[int], voxel_size_nm: float, config: BlobConfig = BlobConfig()) -> BlobPoints:
    """Blob centres cutting the labelled slices (pseudo-points) and in the held-out slices beyond them.

    Centres closer than a radius to a face of the tomogram are dropped: their particle is cut off there.
    """
    config.validate()
    radius = config.diameter_nm / 2 / voxel_size_nm
    nz = volume.shape[0]
    labelled = sorted(set(int(z) for z in z_list))
    calibration_depth = int(round(config.calibration_nm / voxel_size_nm))
    held_out = held_out_slices(labelled, radius, calibration_depth, nz)
    points, scores, calibration, calibration_scores, noise_levels = [], [], [], [], []
    for first, last in slice_windows(labelled, int(math.ceil(radius)) + calibration_depth, nz):
        found, found_scores, noise = detect_blobs(volume, first, last, voxel_size_nm, config)
        noise_levels.append(noise)
        cuts = np.array([any(abs(z - s) <= radius for s in labelled) for z in found[:, 2]], dtype=bool)
        beyond = np.isin(np.rint(found[:, 2]).astype(int), held_out) & ~cuts
        points.append(found[cuts])
        scores.append(found_scores[cuts])
        calibration.append(found[beyond])
        calibration_scores.append(found_scores[beyond])
    log.info("Particle evidence: %d pseudo-points cutting %d labelled slice(s), %d held-out points on %d calibration "
             "slices; blob scale %.2f px, threshold %.1f noise levels", sum(len(p) for p in points), len(labelled),
             sum(len(c) for c in calibration), len(held_out), radius / math.sqrt(3.0), config.threshold)
    return BlobPoints(np.concatenate(points), np.concatenate(scores), np.concatenate(calibration),
                      np.concatenate(calibration_scores), held_out, radius, noise_levels)
