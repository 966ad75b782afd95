"""Training data of the picker: pseudo-label folders and random 2.5-D samples from their labelled slices.

Pseudo-points exist only on the slices the pseudo-label stage labelled, and only there does the
absence of a point say anything. Samples are therefore centred on labelled slices only; half of them
(by default) are placed around a pseudo-point so that the rare positive pixels are seen often.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np

from ..errors import CryoDiffSegError
from ..evaluation import read_points
from ..pseudolabel.manifest import read_manifest
from ..tomoio import read_tomogram
from .heatmap import slice_heatmap
from .volume import PickerVolume

@dataclass
class PseudoLabelSource:
    """One pseudo-label folder, opened: its tomogram on the picker grid, points and labelled slices there."""

    folder: Path
    volume: PickerVolume
    points_xyz: np.ndarray  # picker-grid voxels
    labelled_slices: np.ndarray  # picker-grid z, sorted, unique
    calibration_xyz: np.ndarray  # held-out points, picker-grid voxels (may be empty)
    calibration_slices: np.ndarray  # the held-out slices they were found on, picker-grid z

    def describe(self) -> dict:
        return {
            "pseudolabels": str(self.folder),
            "tomogram": str(self.volume.tomogram.path),
            "voxel_size_A": self.volume.tomogram.voxel_size,
            "points": int(len(self.points_xyz)),
            "labelled_slices": int(len(self.labelled_slices)),
            "calibration_points": int(len(self.calibration_xyz)),
            "calibration_slices": int(len(self.calibration_slices)),
        }


def open_source(folder: os.PathLike, voxel_size_A: Optional[float] = None) -> PseudoLabelSource:
    """Open a pseudo-label folder on a picker grid of ``voxel_size_A`` (None: the tomogram's own)."""
    manifest = read_manifest(folder, need=("points",))
    tomogram = read_tomogram(manifest.tomogram, voxel_size=manifest.voxel_size_A)
    volume = PickerVolume(tomogram, voxel_size_A or tomogram.voxel_size)
    points = volume.from_tomogram(read_points(manifest.points))
    calibration = np.zeros((0, 3))
    if manifest.calibration_points is not None and manifest.calibration_points.is_file():
        calibration = volume.from_tomogram(read_points(manifest.calibration_points))
    return PseudoLabelSource(manifest.folder, volume, points, _grid_slices(volume, manifest.labelled_slices), calibration,
                             _grid_slices(volume, manifest.calibration_slices))


def _grid_slices(volume: PickerVolume, slices) -> np.ndarray:
    """Tomogram slice numbers on the picker grid: sorted, unique, inside the volume."""
    z = volume.from_tomogram(np.asarray(slices, dtype=np.float64))  # elementwise
    return np.unique(np.clip(np.round(z), 0, volume.shape[0] - 1)).astype(np.int64)


class SampleDrawer:
    """Random (stack, target) training pairs with flips and 90-degree rotations.

    A stack is ``2 * context + 1`` slices centred on a labelled slice; its target is the heatmap of
    the middle slice.
    """

    def __init__(self, sources: Sequence[PseudoLabelSource], context: int, patch: int, sigma: float,
                 positive_fraction: float, seed: int):
        self.sources = [s for s in sources if len(s.labelled_slices)]
        self.context = context
        self.patch = patch
        self.sigma = sigma
        self.positive_fraction = positive_fraction
        self.rng = np.random.default_rng(seed)
        self.with_points = [s for s in self.sources if len(s.points_xyz)]

    def batch(self, size: int, augment: bool = True) -> Tuple[np.ndarray, np.ndarray]:
        channels = 2 * self.context + 1
        stacks = np.empty((size, channels, self.patch, self.patch), dtype=np.float32)
        targets = np.empty((size, 1, self.patch, self.patch), dtype=np.float32)
        for i in range(size):
            stack, target = self._draw()
            if augment:
                stack, target = self._augment(stack, target)
            stacks[i], targets[i, 0] = stack, target
        return stacks, targets

    def _draw(self) -> Tuple[np.ndarray, np.ndarray]:
        rng = self.rng
        if self.with_points and rng.random() < self.positive_fraction:
            source = self.with_points[rng.integers(len(self.with_points))]
            x, y, z = source.points_xyz[rng.integers(len(source.points_xyz))]
            # The labelled slice nearest to a random slice within one sigma of the point.
            wanted = z + rng.uniform(-self.sigma, self.sigma)
            z = int(source.labelled_slices[np.argmin(np.abs(source.labelled_slices - wanted))])
            y0 = int(np.floor(y)) - int(rng.integers(self.patch // 8, self.patch - self.patch // 8))
            x0 = int(np.floor(x)) - int(rng.integers(self.patch // 8, self.patch - self.patch // 8))
        else:
            source = self.sources[rng.integers(len(self.sources))]
            _, ny, nx = source.volume.shape
            z = int(source.labelled_slices[rng.integers(len(source.labelled_slices))])
            y0 = int(rng.integers(0, max(1, ny - self.patch + 1)))
            x0 = int(rng.integers(0, max(1, nx - self.patch + 1)))
        start = (z - self.context, y0, x0)
        stop = (z + self.context + 1, y0 + self.patch, x0 + self.patch)
        stack = source.volume.block(start, stop)
        target = slice_heatmap(source.points_xyz, z, (y0, x0), self.patch, self.sigma)
        return stack, target

    def _augment(self, stack: np.ndarray, target: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        turns = int(self.rng.integers(4))
        stack, target = np.rot90(stack, turns, axes=(1, 2)), np.rot90(target, turns)
        if self.rng.random() < 0.5:
            stack, target = stack[:, :, ::-1], target[:, ::-1]
        if self.rng.random() < 0.5:  # the missing wedge is symmetric in z: so is the data
            stack = stack[::-1]
        return stack, target


def require_points(folders: Sequence[os.PathLike]) -> None:
    """At least one pseudo-point in the folders, read from their lists alone (no tomogram is opened)."""
    if not any(len(read_points(read_manifest(folder, need=("points",)).points)) for folder in folders):
        listed = ", ".join(str(folder) for folder in folders)
        raise CryoDiffSegError(f"There are no pseudo-points to train on in {listed}: the picker needs at least one.")
