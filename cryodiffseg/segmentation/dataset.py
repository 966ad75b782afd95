"""Training data from pseudo-label folders: labelled slices only, split by slice, augmented random crops.

Only the slices a pseudo-label folder lists as labelled carry labels; every other slice of its mask is
unlabelled (not background) and is never read. Tomogram and mask stay memory-mapped: a crop reads
only its own window, so the training set costs no memory beyond the crops of one batch.
"""

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import CryoDiffSegError
from ..pseudolabel.manifest import MANIFEST, read_manifest
from ..tomoio import Tomogram, read_tomogram
from .normalisation import slice_statistics

log = logging.getLogger("cryodiffseg")

IGNORE = -1  # label of pixels outside the slice (crop borders): no loss there


@dataclass
class PseudoLabelSet:
    """One pseudo-label folder: its tomogram and mask (both possibly memory-mapped) and labelled slices."""

    folder: Path
    tomogram: Tomogram
    mask: np.ndarray
    labelled_slices: List[int]


@dataclass(frozen=True)
class LabelledSlice:
    """Slice ``z`` of pseudo-label set ``set_index``, with the statistics that z-score it."""

    set_index: int
    z: int
    mean: float
    std: float


def read_pseudolabel_folder(folder: os.PathLike) -> PseudoLabelSet:
    """Open a folder written by ``cryodiffseg pseudolabel``, checking that mask and tomogram agree."""
    manifest = read_manifest(folder, need=("membrane_mask",))
    folder, manifest_path = manifest.folder, manifest.folder / MANIFEST
    tomogram_path, mask_path = manifest.tomogram, manifest.membrane_mask
    voxel_size, labelled = manifest.voxel_size_A, manifest.labelled_slices
    # The manifest's voxel size wins over the header: the pseudo-labels may have been made with --voxel-size.
    tomogram = read_tomogram(tomogram_path, voxel_size=voxel_size, check_values=False)
    mask = read_tomogram(mask_path, voxel_size=voxel_size, check_values=False).data
    if mask.shape != tomogram.data.shape:
        raise CryoDiffSegError(
            f"The membrane mask {mask_path} has shape {mask.shape} but its tomogram {tomogram_path} has {tomogram.shape}."
        )
    if not labelled:
        raise CryoDiffSegError(f"{manifest_path} lists no labelled slices: there is nothing to train on.")
    if labelled[0] < 0 or labelled[-1] >= tomogram.shape[0]:
        raise CryoDiffSegError(f"{manifest_path} lists labelled slices outside 0-{tomogram.shape[0] - 1}.")
    return PseudoLabelSet(folder, tomogram, mask, labelled)


def labelled_slices(sets: Sequence[PseudoLabelSet]) -> List[LabelledSlice]:
    """Every labelled slice of every set, with its z-score statistics; checks values on the way."""
    slices = []
    for index, pseudo in enumerate(sets):
        for z in pseudo.labelled_slices:
            image = np.asarray(pseudo.tomogram.data[z])
            if not np.isfinite(image).all():
                raise CryoDiffSegError(f"Slice z={z} of {pseudo.tomogram.path} contains NaN or Inf values.")
            labels = np.asarray(pseudo.mask[z])
            if not np.isin(labels, (0, 1)).all():
                raise CryoDiffSegError(f"Slice z={z} of the mask in {pseudo.folder} holds values other than 0 and 1.")
            slices.append(LabelledSlice(index, z, *slice_statistics(image)))
    return slices


def split_slices(
    slices: Sequence[LabelledSlice], validation_fraction: float, seed: int
) -> Tuple[List[LabelledSlice], List[LabelledSlice]]:
    """(train, validation) by whole slices; the same for the same seed. Two or more slices keep one of each."""
    count = len(slices)
    n_validation = int(round(validation_fraction * count))
    if validation_fraction > 0 and count >= 2:
        n_validation = min(max(n_validation, 1), count - 1)
    order = np.random.default_rng(seed).permutation(count)
    validation = sorted(order[:n_validation].tolist())
    train = sorted(order[n_validation:].tolist())
    return [slices[i] for i in train], [slices[i] for i in validation]


class CropSampler:
    """Square crops of labelled slices, z-scored, with random rot90/flip and small-angle rotations.

    Each crop reads a window wide enough for the rotated square, so rotation brings in real image rather
    than padding; pixels that still fall outside the slice are labelled IGNORE. Image and labels go
    through one and the same sampling grid (bilinear for the image, nearest for the labels).
    """

    def __init__(
        self,
        sets: Sequence[PseudoLabelSet],
        slices: Sequence[LabelledSlice],
        crop_size: int,
        flips: bool = True,
        max_rotation_deg: float = 20.0,
    ):
        if not slices:
            raise ValueError("A CropSampler needs at least one slice.")
        self.sets = list(sets)
        self.slices = list(slices)
        self.crop_size = int(crop_size)
        self.flips = flips
        self.max_rotation = math.radians(abs(max_rotation_deg))
        # Half the bounding box of the crop rotated by the largest angle, beyond the crop; +1 for interpolation.
        angle = min(self.max_rotation, math.pi / 4)
        self.margin = math.ceil(self.crop_size / 2 * (math.cos(angle) + math.sin(angle) - 1)) + 1 if angle else 0

    def batch(self, size: int, rng: np.random.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
        """``size`` crops of randomly chosen slices: images (n, 1, c, c) float32, labels (n, c, c) int64."""
        return self.crops(rng.integers(len(self.slices), size=size), rng)

    def crops(self, slice_indices: Sequence[int], rng: np.random.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
        windows = [self._window(self.slices[i], rng) for i in slice_indices]
        images = torch.from_numpy(np.stack([w[0] for w in windows]))[:, None]
        # Labels are sampled shifted by one, so the zero padding of grid_sample reads back as IGNORE.
        shifted = torch.from_numpy(np.stack([w[1] for w in windows]).astype(np.float32) + 1.0)[:, None]
        grid = self._sampling_grid(len(windows), images.shape[-1], rng)
        images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        shifted = F.grid_sample(shifted, grid, mode="nearest", padding_mode="zeros", align_corners=False)
        return images.contiguous(), shifted[:, 0].round().long() - 1

    def _window(self, item: LabelledSlice, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
        """Z-scored image and labels (IGNORE outside the slice) of a random window, crop plus margins."""
        pseudo = self.sets[item.set_index]
        height, width = pseudo.tomogram.shape[1:]
        c, m = self.crop_size, self.margin
        top = int(rng.integers(max(height - c, 0) + 1)) - m
        left = int(rng.integers(max(width - c, 0) + 1)) - m
        size = c + 2 * m
        image = np.zeros((size, size), dtype=np.float32)
        labels = np.full((size, size), IGNORE, dtype=np.int8)
        y0, y1 = max(top, 0), min(top + size, height)
        x0, x1 = max(left, 0), min(left + size, width)
        inside = np.s_[y0 - top : y1 - top, x0 - left : x1 - left]
        image[inside] = (np.asarray(pseudo.tomogram.data[item.z, y0:y1, x0:x1], dtype=np.float32) - item.mean) / item.std
        labels[inside] = pseudo.mask[item.z, y0:y1, x0:x1]
        return image, labels

    def _sampling_grid(self, count: int, window: int, rng: np.random.Generator) -> torch.Tensor:
        """Affine grids taking the centred c x c output through a random dihedral map and rotation."""
        thetas = np.zeros((count, 2, 3), dtype=np.float32)
        for i in range(count):
            angle = rng.uniform(-self.max_rotation, self.max_rotation) if self.max_rotation else 0.0
            cos, sin = math.cos(angle), math.sin(angle)
            matrix = np.array([[cos, -sin], [sin, cos]])
            if self.flips:
                quarter_turns = int(rng.integers(4))
                matrix = matrix @ np.linalg.matrix_power(np.array([[0.0, -1.0], [1.0, 0.0]]), quarter_turns)
                if rng.integers(2):
                    matrix = matrix @ np.diag([-1.0, 1.0])
            thetas[i, :, :2] = matrix * (self.crop_size / window)
        return F.affine_grid(torch.from_numpy(thetas), [count, 1, self.crop_size, self.crop_size], align_corners=False)
