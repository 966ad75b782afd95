"""Membrane evidence from the image itself: thin dark sheets at the bilayer's scale, followed through z.

A lipid bilayer is a dark sheet a few nm thick. At that scale the Hessian of the density has one large
positive eigenvalue across a dark sheet and two near zero along it, where a dark filament has two large ones
and a particle three: the plate measure keeps the first kind (Frangi's vesselness turned to plates).
Filaments and particles lying in the slice plane are smeared along z by the missing wedge and look like short
plates over a few slices; a membrane stays a sheet through tens of nm of the section. So a sheet pixel of a
labelled slice is kept only where the sheet can be followed, one pixel of lateral shift per slice at most,
through ``min_depth_nm`` of slices, and only in pieces at least ``min_length_nm`` long in the slice. A small
vesicle's wall turns away from the slice within fewer slices than that, so a piece that closes around a lumen
lighter than itself (a vesicle cut across, which no filament or particle rim does) is kept whatever its depth.

Thresholds are in units of the noise level of the window (the median |largest eigenvalue|), so they hold
for any contrast, and every length is in nm, so they hold for any voxel size.
"""

import logging
import math
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import apply_hysteresis_threshold
from skimage.morphology import skeletonize

from ..errors import CryoDiffSegError
from ..progress import Progress
from ..tomoio import release_pages

log = logging.getLogger("cryodiffseg")

_TRUNCATE = 4.0  # Gaussian kernels reach this many sigmas
_NOISE_SAMPLE_STRIDE = 4  # every 4th row and column of the window estimates the noise level


@dataclass(frozen=True)
class SheetConfig:
    """Scale and thresholds of the sheet evidence (measured defaults, BENCHMARKS.md)."""

    scale_nm: float = 3.0  # Gaussian scale of the Hessian: about a bilayer's thickness
    plate_ratio: float = 0.3  # how much the second eigenvalue may rise against the first (alpha)
    low: float = 2.25  # hysteresis thresholds of the plate measure, in noise levels; a sheet is followed
    # through z where it stays above ``low``
    high: float = 4.0
    min_depth_nm: float = 30.0  # a kept sheet continues through this much of the section along z
    min_length_nm: float = 30.0  # a kept piece of a slice's mask has a skeleton at least this long
    min_lumen_nm: float = 5.0  # a piece closed around a lighter lumen of at least this radius needs no depth (0: off)
    attention_weight: float = 0.5  # membranes "both": the canvas darkness scales the plate measure by 1 +- this
    chunk_voxels: int = 2**23  # Hessian computed this many voxels at a time (memory ~ 40 bytes per voxel)

    def validate(self) -> None:
        if not self.scale_nm > 0 or min(self.min_depth_nm, self.min_length_nm, self.min_lumen_nm) < 0:
            raise CryoDiffSegError("The sheet scale must be positive and the sheet depth, length and lumen not negative.")
        if not self.plate_ratio > 0:
            raise CryoDiffSegError(f"The plate ratio must be positive, got {self.plate_ratio}.")
        if not 0 < self.low <= self.high:
            raise CryoDiffSegError(f"Sheet thresholds need 0 < low <= high, got {self.low} and {self.high}.")
        if not 0 <= self.attention_weight <= 1:
            raise CryoDiffSegError(f"The attention weight must be in [0, 1], got {self.attention_weight}.")


@dataclass
class SheetEvidence:
    """Per labelled slice: the kept sheet mask and the plate measure in noise levels (for the QC figure)."""

    masks: Dict[int, np.ndarray]
    response: Dict[int, np.ndarray]
    noise_levels: List[float]  # one per window of slices
    sigma_px: float
    depth_px: int


def _hessian_blocks(volume: np.ndarray, sigma: float, chunk_voxels: int):
    """(first row, eigenvalues (3, z, rows, x) largest first) of the Gaussian-derivative Hessian, by blocks of
    rows (y) computed with a margin of the kernel's reach: each block equals the whole-volume computation. The
    volume is read and converted a block at a time, and a memory-mapped one's pages are handed back after each."""
    depth, height, width = volume.shape
    margin = int(_TRUNCATE * sigma + 0.5)
    # at least twice the margin per block: thinner blocks would recompute their margins many times over
    rows = max(2 * margin, 1, chunk_voxels // max(depth * width, 1) - 2 * margin)
    for y0 in range(0, height, rows):
        y1 = min(height, y0 + rows)
        a, b = max(0, y0 - margin), min(height, y1 + margin)
        block = np.array(volume[:, a:b], dtype=np.float32)
        release_pages(volume)
        hessian = np.empty(block.shape + (3, 3), dtype=np.float32)
        for i in range(3):
            for j in range(i, 3):
                order = [0, 0, 0]
                order[i] += 1
                order[j] += 1
                derivative = ndi.gaussian_filter(block, sigma, order=order, mode="reflect", truncate=_TRUNCATE)
                hessian[..., i, j] = derivative
                hessian[..., j, i] = derivative
        values = np.linalg.eigvalsh(hessian[:, y0 - a : y1 - a])  # ascending
        yield y0, np.moveaxis(values[..., ::-1], -1, 0)


def hessian_eigenvalues(volume: np.ndarray, sigma: float, chunk_voxels: int = 2**23) -> np.ndarray:
    """Eigenvalues (3, z, y, x), largest first, of the Gaussian-derivative Hessian of a 3-D volume, float32."""
    out = np.empty((3,) + np.shape(volume), dtype=np.float32)
    for y0, values in _hessian_blocks(volume, sigma, chunk_voxels):
        out[:, :, y0 : y0 + values.shape[2]] = values
    return out


def plate_response(volume: np.ndarray, sigma: float, plate_ratio: float, chunk_voxels: int = 2**23,
                   noise_slices: slice = slice(None)) -> Tuple[np.ndarray, float]:
    """(plate measure in noise levels, the noise level): the noise level is the median |largest eigenvalue| on
    every 4th row and column of ``noise_slices``. Only the measure is kept, never all the eigenvalues."""
    response = np.empty(np.shape(volume), dtype=np.float32)
    samples = []
    for y0, values in _hessian_blocks(volume, sigma, chunk_voxels):
        response[:, y0 : y0 + values.shape[2]] = plate_measure(values, plate_ratio)
        rows = slice((-y0) % _NOISE_SAMPLE_STRIDE, None, _NOISE_SAMPLE_STRIDE)
        samples.append(np.abs(values[0][noise_slices, rows, ::_NOISE_SAMPLE_STRIDE]).ravel())
    noise = float(np.median(np.concatenate(samples))) if samples else 0.0
    if not noise > 0:  # a constant window: no structure at all
        noise = 1.0
    response /= noise
    return response, noise


def plate_measure(eigenvalues: np.ndarray, plate_ratio: float) -> np.ndarray:
    """Dark-sheet strength: the largest eigenvalue where it is positive, damped as the second one rises."""
    first, second = eigenvalues[0], eigenvalues[1]
    ratio = np.minimum(np.abs(second) / np.maximum(first, np.finfo(np.float32).tiny), 1e3)  # no overflow below
    damping = np.exp(-(ratio**2) / (2 * plate_ratio**2))
    return np.where(first > 0, first * damping, 0.0).astype(np.float32)


def sheet_depth(mask: np.ndarray) -> np.ndarray:
    """Per voxel of a 3-D mask: slices of the longest run through it along z, shifting <= 1 px per slice."""
    mask = np.asarray(mask, dtype=bool)
    up = np.zeros(mask.shape, dtype=np.int16)  # runs are at most a window's depth
    down = np.zeros(mask.shape, dtype=np.int16)
    up[-1], down[0] = mask[-1], mask[0]
    for z in range(mask.shape[0] - 2, -1, -1):
        up[z] = mask[z] * (1 + ndi.maximum_filter(up[z + 1], size=3))
    for z in range(1, mask.shape[0]):
        down[z] = mask[z] * (1 + ndi.maximum_filter(down[z - 1], size=3))
    return np.where(mask, up + down - 1, 0).astype(np.int16)


def long_pieces(mask: np.ndarray, min_length_px: float) -> np.ndarray:
    """The 8-connected pieces of a 2-D mask whose skeleton has at least ``min_length_px`` pixels."""
    mask = np.asarray(mask, dtype=bool)
    labels, count = ndi.label(mask, structure=np.ones((3, 3)))
    if count == 0:
        return mask
    lengths = np.bincount(labels[skeletonize(mask)], minlength=count + 1)
    keep = lengths >= min_length_px
    keep[0] = False
    return keep[labels]


def closed_rings(mask: np.ndarray, image: np.ndarray, min_hole_px: float) -> np.ndarray:
    """The 8-connected pieces of a 2-D mask enclosing a hole of >= ``min_hole_px`` pixels that is lighter in
    ``image`` than the piece itself: vesicles cut across, not the rim around a dark particle."""
    mask = np.asarray(mask, dtype=bool)
    pieces, count = ndi.label(mask, structure=np.ones((3, 3)))
    holes, hole_count = ndi.label(ndi.binary_fill_holes(mask) & ~mask)
    keep = np.zeros(count + 1, dtype=bool)
    if hole_count == 0 or min_hole_px <= 0:
        return keep[pieces]
    hole_sizes = np.bincount(holes.ravel(), minlength=hole_count + 1)
    hole_means = ndi.mean(image, holes, np.arange(1, hole_count + 1))
    piece_means = ndi.mean(image, pieces, np.arange(1, count + 1))
    for hole in np.flatnonzero(hole_sizes[1:] >= min_hole_px) + 1:
        around = np.unique(pieces[ndi.binary_dilation(holes == hole, structure=np.ones((3, 3)))])
        for piece in around[around > 0]:
            if hole_means[hole - 1] > piece_means[piece - 1]:
                keep[piece] = True
    return keep[pieces]


def slice_windows(z_list: Sequence[int], reach: int, depth: int) -> List[Tuple[int, int]]:
    """Half-open z ranges, each covering a run of labelled slices +- ``reach``, overlapping ones merged."""
    windows: List[Tuple[int, int]] = []
    for z in sorted(set(int(z) for z in z_list)):
        first, last = max(0, z - reach), min(depth, z + reach + 1)
        if windows and first <= windows[-1][1]:
            windows[-1] = (windows[-1][0], max(windows[-1][1], last))
        else:
            windows.append((first, last))
    return windows


def membrane_sheets(
    volume: np.ndarray,
    z_list: Sequence[int],
    voxel_size_nm: float,
    config: SheetConfig = SheetConfig(),
    weights: Optional[Mapping[int, np.ndarray]] = None,
) -> SheetEvidence:
    """Sheet masks of the slices ``z_list`` of a (possibly memory-mapped) tomogram.

    ``weights`` (optional, per labelled slice) multiply the plate measure of that slice before thresholding:
    how other evidence (the attention canvas) is combined with this one.
    """
    config.validate()
    sigma = config.scale_nm / voxel_size_nm
    depth_px = max(1, int(round(config.min_depth_nm / voxel_size_nm)))
    length_px = config.min_length_nm / voxel_size_nm
    lumen_px = math.pi * (config.min_lumen_nm / voxel_size_nm) ** 2
    margin = int(_TRUNCATE * sigma + 0.5)
    nz = volume.shape[0]
    evidence = SheetEvidence({}, {}, [], sigma, depth_px)
    windows = slice_windows(z_list, depth_px, nz)
    wanted = sorted(set(int(z) for z in z_list))
    progress = Progress("sheet evidence (windows)", len(windows))
    for first, last in windows:
        read_first, read_last = max(0, first - margin), min(nz, last + margin)
        block = volume[read_first:read_last]  # a view: read by row blocks
        window = slice(first - read_first, last - read_first)
        response, noise = plate_response(block, sigma, config.plate_ratio, config.chunk_voxels, window)
        response = response[window]
        # A sheet cut short by the end of the tomogram can only be followed as far as the tomogram goes.
        depth = sheet_depth(response > config.low)
        needed = min(depth_px, last - first)
        for z in (z for z in wanted if first <= z < last):
            plane = response[z - first]
            if weights is not None and z in weights:
                plane = plane * weights[z]
            candidates = apply_hysteresis_threshold(plane, config.low, config.high)
            kept = candidates & (depth[z - first] >= needed)
            if config.min_lumen_nm > 0:
                smoothed = ndi.gaussian_filter(np.asarray(volume[z], dtype=np.float32), 1.0 / voxel_size_nm)
                kept |= closed_rings(candidates, smoothed, lumen_px)
            evidence.masks[z] = long_pieces(kept, length_px)
            evidence.response[z] = plane
        evidence.noise_levels.append(noise)
        progress.step()
    log.info(
        "Sheet evidence: scale %.2f px, kept sheets continue through >= %d slices, %d window(s), mask %.2f%% of the labelled slices",
        sigma, depth_px, len(windows), 100 * float(np.mean([m.mean() for m in evidence.masks.values()])) if evidence.masks else 0.0,
    )
    return evidence


def attention_weights(canvas: np.ndarray, weight: float) -> np.ndarray:
    """1 + weight x (darkness - its mean) of a 0-255 canvas: > 1 where the attention canvas is dark."""
    darkness = 1.0 - np.asarray(canvas, dtype=np.float32) / 255.0
    return 1.0 + weight * (darkness - darkness.mean())
