"""Do the picks hold particles? The facility's test, done at once: average the subvolumes at the picks.

Boxes are cut where RELION 3 extraction cuts them (``[floor(p) - box/2, floor(p) + box/2)`` per axis), split
into two halves (alternate picks in score order), and averaged. Particles at the picks give a centred blob
whose two half-averages agree (Fourier shell correlation well above zero at low resolution); positions that
are not particles average to featureless noise. The same is done for as many random positions inside the
tomogram, with the same box, as the reference for "nothing".
"""

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

LOW_SHELLS = (1, 7)  # the Fourier shells whose mean FSC is reported (the lowest resolutions, which a blob fills)


@dataclass
class AverageQuality:
    """How much an average looks like a particle: its boxes, centre contrast and half-set agreement."""

    boxes: int
    centre_contrast: float  # (mean outside the particle - mean in its central half) / std outside; dark particle > 0
    fsc_low: float  # mean half-set FSC over shells LOW_SHELLS
    fsc: np.ndarray  # per shell, from 0
    average: np.ndarray  # (box, box, box) z, y, x

    def to_record(self) -> dict:
        return {"boxes": self.boxes, "centre_contrast": round(self.centre_contrast, 3), "fsc_low_shells": round(self.fsc_low, 3),
                "fsc": [round(float(v), 3) for v in self.fsc]}


def box_corners(points_xyz: np.ndarray, box: int) -> np.ndarray:
    """(n, 3) z, y, x first voxels of the boxes around points x, y, z (RELION 3's integer extraction)."""
    points_xyz = np.asarray(points_xyz, dtype=np.float64).reshape(-1, 3)
    return np.floor(points_xyz[:, ::-1]).astype(np.int64) - box // 2


def extract_boxes(volume: np.ndarray, points_xyz: np.ndarray, box: int) -> np.ndarray:
    """(n, box, box, box) float32 subvolumes of the points whose box lies inside the volume (others skipped)."""
    corners = box_corners(points_xyz, box)
    inside = np.all((corners >= 0) & (corners + box <= np.array(volume.shape)), axis=1)
    return np.stack([np.asarray(volume[z : z + box, y : y + box, x : x + box], dtype=np.float32)
                     for z, y, x in corners[inside]]) if inside.any() else np.zeros((0, box, box, box), np.float32)


def fourier_shell_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """FSC per integer shell radius (Fourier voxels) from 0 to box/2 - 1."""
    fa, fb = np.fft.fftn(a), np.fft.fftn(b)
    frequencies = np.meshgrid(*[np.fft.fftfreq(n) * n for n in a.shape], indexing="ij")
    shell = np.rint(np.sqrt(sum(f**2 for f in frequencies))).astype(np.int64).ravel()
    count = min(a.shape) // 2
    cross = np.bincount(shell, (fa * np.conj(fb)).real.ravel(), minlength=count)[:count]
    power_a = np.bincount(shell, (np.abs(fa) ** 2).ravel(), minlength=count)[:count]
    power_b = np.bincount(shell, (np.abs(fb) ** 2).ravel(), minlength=count)[:count]
    return cross / np.sqrt(np.maximum(power_a * power_b, np.finfo(np.float64).tiny))


def centre_contrast(average: np.ndarray, radius: float) -> float:
    """(mean beyond the particle radius - mean within half of it) / std beyond: > 0 for a dark centred blob."""
    grid = np.meshgrid(*[np.arange(n) - n // 2 for n in average.shape], indexing="ij")
    distance = np.sqrt(sum(g.astype(np.float64) ** 2 for g in grid))
    outside, centre = average[distance > radius], average[distance < radius / 2]
    spread = float(outside.std()) or 1.0
    return float((outside.mean() - centre.mean()) / spread)


def average_quality(volume: np.ndarray, points_xyz: np.ndarray, box: int, radius: float) -> Optional[AverageQuality]:
    """The average of the boxes at the points (in the given order), with its quality; None below 2 boxes."""
    boxes = extract_boxes(volume, points_xyz, box)
    if len(boxes) < 2:
        return None
    # Each box standardised on its own, as extraction with normalisation does: no box dominates the average.
    boxes = (boxes - boxes.mean(axis=(1, 2, 3), keepdims=True)) / np.maximum(boxes.std(axis=(1, 2, 3), keepdims=True), 1e-6)
    fsc = fourier_shell_correlation(boxes[0::2].mean(axis=0), boxes[1::2].mean(axis=0))
    average = boxes.mean(axis=0)
    low = fsc[LOW_SHELLS[0] : LOW_SHELLS[1] + 1]
    return AverageQuality(len(boxes), centre_contrast(average, radius), float(low.mean()), fsc, average)


def random_positions(shape_zyx, count: int, box: int, seed: int = 0) -> np.ndarray:
    """(count, 3) x, y, z positions whose boxes lie inside a volume of ``shape_zyx``."""
    rng = np.random.default_rng(seed)
    half = box // 2
    columns = [rng.uniform(half, max(half + 1, n - half), size=count) for n in shape_zyx[::-1]]
    return np.column_stack(columns)


def default_box(diameter_voxels: float) -> int:
    """An even box of 1.6 particle diameters: the particle and a margin of background around it."""
    return max(8, 2 * int(math.ceil(0.8 * diameter_voxels)))
