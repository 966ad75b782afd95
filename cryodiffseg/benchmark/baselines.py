"""Classical membrane baselines a facility user has without any model: thresholding the tomogram.

Membranes are dense, so dark: the foreground is what lies below a global Otsu threshold of the smoothed
volume, or below each slice's local Gaussian-weighted mean minus an offset (adaptive). Both get the same
clean-up as the U-Net's mask (3-D components smaller than ``min_component_voxels`` removed).
"""

from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_local, threshold_otsu

from ..tomoio import read_tomogram, write_mrc

SMOOTHING_SIGMA = 1.5  # voxels
ADAPTIVE_BLOCK = 31  # px
ADAPTIVE_OFFSET_STD = 0.5  # in units of the smoothed slice's standard deviation


def threshold_baseline(tomogram_path, out_path: Path, method: str, min_component_voxels: int) -> Path:
    tomogram = read_tomogram(tomogram_path, check_values=False)
    volume = ndi.gaussian_filter(np.asarray(tomogram.data, dtype=np.float32), SMOOTHING_SIGMA)
    if method == "otsu":
        mask = volume < threshold_otsu(volume)
    elif method == "adaptive":
        mask = np.zeros(volume.shape, dtype=bool)
        for z, plane in enumerate(volume):
            offset = ADAPTIVE_OFFSET_STD * plane.std()
            mask[z] = plane < threshold_local(plane, ADAPTIVE_BLOCK, method="gaussian") - offset
    else:
        raise ValueError(f"unknown baseline {method}")
    if min_component_voxels > 0:
        labels, count = ndi.label(mask)
        sizes = np.bincount(labels.ravel(), minlength=count + 1)
        mask = (sizes >= min_component_voxels)[labels] & mask
    return write_mrc(out_path, mask.astype(np.int8), tomogram.voxel_size, tomogram.origin)
