"""Benchmark data: generated tomograms (always), the shared simulated set and real microtubule patches
(when present)."""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

from ..synthetic import generate_phantom, scaled_config, write_phantom

log = logging.getLogger("cryodiffseg")

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"  # ../shared/data from the repository


@dataclass
class BenchTomogram:
    name: str
    tomogram: Path
    membrane: Path  # ground-truth membrane mask MRC
    particles: Optional[Path]  # ground-truth ribosome centres CSV (x, y, z voxels)


@dataclass
class Dataset:
    name: str
    description: str
    voxel_size_A: float
    tomograms: List[BenchTomogram]


def generated_dataset(folder: Path, shape: Tuple[int, int, int], count: int, seed: int, snr: float = 0.3) -> Dataset:
    tomograms = []
    for index in range(count):
        phantom = generate_phantom(scaled_config(shape, seed=seed + index, snr=snr))
        paths = write_phantom(phantom, Path(folder) / f"gen{index + 1}")
        tomograms.append(BenchTomogram(f"gen{index + 1}", paths["tomogram"], paths["membrane"], paths["particles"]))
    z, y, x = shape
    return Dataset(
        "generated",
        f"{count} tomograms from `cryodiffseg synth` ({x} x {y} x {z} voxels, 10 A, projection SNR {snr}, seeds {seed}-{seed + count - 1})",
        10.0,
        tomograms,
    )


def shared_sim_dataset(root: Path = SHARED_DATA) -> Optional[Dataset]:
    folder = Path(root) / "sim"
    names = sorted(p.name for p in folder.glob("sim*") if (p / "tomogram.mrc").is_file()) if folder.is_dir() else []
    if not names:
        log.info("Shared simulated tomograms not found under %s: that data set is skipped", folder)
        return None
    tomograms = [
        BenchTomogram(name, folder / name / "tomogram.mrc", folder / name / "membrane.mrc", folder / name / "ribosomes.csv")
        for name in names
    ]
    return Dataset("simulated (polnet)", f"{', '.join(names)} from {folder}: 256 x 256 x 128 voxels, 10 A, polnet scenes", 10.0, tomograms)


def microtubule_patches(root: Path = SHARED_DATA) -> List[Tuple[Path, Path]]:
    folder = Path(root) / "tardis-microtubules"
    if not folder.is_dir():
        log.info("Real microtubule patches not found under %s: that section is skipped", folder)
        return []
    return [(p, p.with_name(p.stem + "_mask.tif")) for p in sorted(folder.glob("*.tif")) if not p.stem.endswith("_mask")]
