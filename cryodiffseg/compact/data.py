"""Training crops for the compact backbone: preprocessed z-slices of synthetic and user tomograms.

Slices go through exactly the preprocessing the pseudo-label pipeline applies before tiling, so the
model sees at training time what it sees at feature-extraction time.
"""

import logging
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np

from ..progress import Progress
from ..pseudolabel.preprocess import PreprocessConfig, preprocess_slice
from ..synthetic import PhantomConfig, generate_phantom, scaled_config
from ..tomoio import read_tomogram

log = logging.getLogger("cryodiffseg")


@dataclass(frozen=True)
class SyntheticVariety:
    """Ranges the synthetic training volumes are drawn from (one draw per volume)."""

    volumes: int = 24
    shape: Tuple[int, int, int] = (64, 256, 256)
    voxel_size_A: Tuple[float, float] = (8.0, 16.0)
    snr: Tuple[float, float] = (0.05, 1.0)  # log-uniform
    defocus_um: Tuple[float, float] = (1.5, 5.0)
    thickness_fraction: Tuple[float, float] = (0.6, 1.0)  # of shape[0]: thinner and thicker lamellae
    crowding: Tuple[float, float] = (0.5, 2.0)  # multiplies particle counts
    edge_slices: int = 4  # slices dropped at each z end (back-projection edge effects)


def synthetic_config(variety: SyntheticVariety, index: int, seed: int) -> PhantomConfig:
    """The phantom settings of training volume ``index``: deterministic for a seed."""
    rng = np.random.default_rng([seed, index])
    nz = max(16, int(variety.shape[0] * rng.uniform(*variety.thickness_fraction)))
    area = variety.shape[1] * variety.shape[2] / (128 * 128)  # the generator's defaults are for 128 x 128
    crowd = rng.uniform(*variety.crowding)
    log_snr = rng.uniform(np.log(variety.snr[0]), np.log(variety.snr[1]))
    return scaled_config(
        (nz, variety.shape[1], variety.shape[2]),
        crowding=crowd,
        voxel_size_A=float(rng.uniform(*variety.voxel_size_A)),
        seed=int(rng.integers(2**31)),
        membrane_sheet=bool(rng.random() < 0.6),
        n_vesicles=int(rng.integers(1, 4) * area),
        n_microtubules=int(rng.integers(0, 3) * max(1, area / 2)),
        n_actin=int(rng.integers(1, 4) * area),
        snr=float(np.exp(log_snr)),
        defocus_um=float(rng.uniform(*variety.defocus_um)),
    )


def synthetic_slices(variety: SyntheticVariety, seed: int, preprocess: PreprocessConfig = PreprocessConfig()) -> np.ndarray:
    """(n, Y, X) uint8 preprocessed slices of ``variety.volumes`` generated tomograms."""
    slices: List[np.ndarray] = []
    progress = Progress("synthetic training volumes", variety.volumes)
    for index in range(variety.volumes):
        phantom = generate_phantom(synthetic_config(variety, index, seed))
        volume = phantom.tomogram
        edge = min(variety.edge_slices, volume.shape[0] // 4)
        slices.extend(preprocess_slice(volume[z], preprocess) for z in range(edge, volume.shape[0] - edge))
        progress.step()
    return np.stack(slices)


def tomogram_slices(paths: Sequence[str], max_slices: int = 200, crop: int = 128, voxel_size: float = None) -> List[np.ndarray]:
    """Preprocessed slices of user tomograms (evenly spaced, the outer 10% of z skipped)."""
    slices: List[np.ndarray] = []
    for path in paths:
        tomogram = read_tomogram(path, voxel_size=voxel_size)
        nz, ny, nx = tomogram.shape
        if min(ny, nx) < crop:
            log.warning("Skipping %s: slices of %dx%d are smaller than the %d-px training crop", path, ny, nx, crop)
            continue
        lo, hi = int(0.1 * nz), max(int(0.9 * nz), int(0.1 * nz) + 1)
        chosen = np.unique(np.linspace(lo, hi - 1, min(max_slices, hi - lo)).astype(int))
        slices.extend(preprocess_slice(np.asarray(tomogram.data[z], dtype=np.float32)) for z in chosen)
        log.info("Training slices: %d from %s", len(chosen), path)
    return slices


class CropSampler:
    """Random square crops with random flips and 90-degree rotations, as float tensors in [-1, 1]."""

    def __init__(self, synthetic: np.ndarray, user: Sequence[np.ndarray], crop: int, user_fraction: float, seed: int):
        self.synthetic = synthetic
        self.user = list(user)
        self.crop = crop
        self.user_fraction = user_fraction if self.user else 0.0
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> np.ndarray:
        crops = np.empty((size, 1, self.crop, self.crop), dtype=np.float32)
        for i in range(size):
            if self.rng.random() < self.user_fraction:
                image = self.user[self.rng.integers(len(self.user))]
            else:
                image = self.synthetic[self.rng.integers(len(self.synthetic))]
            y = self.rng.integers(0, image.shape[0] - self.crop + 1)
            x = self.rng.integers(0, image.shape[1] - self.crop + 1)
            patch = np.rot90(image[y : y + self.crop, x : x + self.crop], k=int(self.rng.integers(4)))
            if self.rng.random() < 0.5:
                patch = patch[:, ::-1]
            crops[i, 0] = patch / 127.5 - 1.0
        return crops
