"""Benchmark data: generated tomograms (always), the shared simulated set and real microtubule patches
(when present)."""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from ..synthetic import generate_phantom, scaled_config, write_phantom
from ..tomoio import write_text

log = logging.getLogger("cryodiffseg")

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"  # ../shared/data from the repository


@dataclass
class BenchTomogram:
    name: str
    tomogram: Path
    membrane: Path  # ground-truth membrane mask MRC
    particles: Optional[Path]  # ground-truth ribosome centres CSV (x, y, z voxels), as the data set ships it
    particles_from_labels: Optional[Path] = None  # ribosome centres derived from the label map, where known
    note: str = ""  # what to know about this tomogram's ground truth


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


# The label of the ribosomes (PDB 4v4r) in each polnet label map. classes.csv names label 6 in both, and in
# sim11 the centres of the label-6 objects are its ribosomes.csv (59 of 59 within 5 voxels). sim12's label map
# has no microtubule voxels and its later labels are shifted by one: its label 5 holds 52 objects of the
# ribosome's volume (5,200-5,300 voxels, as sim11's label 6, some touching in pairs), and its ribosomes.csv
# lists the 41 objects of label 6 (1,775 voxels each: the 3j9i complex, as sim11's label 7). Picks are scored
# against both: the file as shipped and the ribosome objects of the label map.
POLNET_RIBOSOME_LABELS = {"sim11": 6, "sim12": 5}
POLNET_NOTES = {"sim12": "sim12's ribosomes.csv lists the 41 centres of a smaller complex (label 6, 3j9i-sized objects), "
                         "not its ribosomes (label 5); picks are also scored against the ribosome objects of labels.mrc"}


def shared_sim_dataset(root: Path = SHARED_DATA, work: Optional[Path] = None) -> Optional[Dataset]:
    folder = Path(root) / "sim"
    names = sorted(p.name for p in folder.glob("sim*") if (p / "tomogram.mrc").is_file()) if folder.is_dir() else []
    if not names:
        log.info("Shared simulated tomograms not found under %s: that data set is skipped", folder)
        return None
    tomograms = []
    for name in names:
        derived = None
        if work is not None and name in POLNET_RIBOSOME_LABELS and (folder / name / "labels.mrc").is_file():
            derived = write_object_centres(folder / name / "labels.mrc", POLNET_RIBOSOME_LABELS[name], Path(work) / f"{name}_ribosomes_from_labels.csv")
        tomograms.append(BenchTomogram(name, folder / name / "tomogram.mrc", folder / name / "membrane.mrc",
                                       folder / name / "ribosomes.csv", derived, POLNET_NOTES.get(name, "")))
    return Dataset("simulated (polnet)", f"{', '.join(names)} from {folder}: 256 x 256 x 128 voxels, 10 A, polnet scenes", 10.0, tomograms)


def object_centres(labels: np.ndarray, label: int, min_voxels: int = 200) -> np.ndarray:
    """(n, 3) x, y, z centres of the objects of one label: connected pieces, those of k times the typical
    volume (touching objects) split into k by k-means."""
    from scipy import ndimage as ndi
    from scipy.cluster.vq import kmeans2

    pieces, _ = ndi.label(labels == label, structure=np.ones((3, 3, 3)))
    sizes = np.bincount(pieces.ravel())
    ids = np.flatnonzero(sizes >= min_voxels)
    ids = ids[ids > 0]
    if not len(ids):
        return np.zeros((0, 3))
    typical = float(np.median(sizes[ids]))
    centres = []
    for index, box in zip(ids, (ndi.find_objects(pieces)[i - 1] for i in ids)):
        zyx = np.argwhere(pieces[box] == index) + [s.start for s in box]
        count = max(1, int(round(sizes[index] / typical)))
        centres.extend([zyx.mean(axis=0)] if count == 1 else kmeans2(zyx.astype(np.float64), count, seed=0, minit="++")[0])
    return np.asarray(centres)[:, ::-1]


def write_object_centres(labels_path: Path, label: int, out: Path) -> Path:
    from ..tomoio import read_tomogram

    centres = object_centres(np.asarray(read_tomogram(labels_path, check_values=False).data), label)
    return write_text(out, "x,y,z\n" + "".join(f"{x:.2f},{y:.2f},{z:.2f}\n" for x, y, z in centres))


def microtubule_patches(root: Path = SHARED_DATA) -> List[Tuple[Path, Path]]:
    folder = Path(root) / "tardis-microtubules"
    if not folder.is_dir():
        log.info("Real microtubule patches not found under %s: that section is skipped", folder)
        return []
    return [(p, p.with_name(p.stem + "_mask.tif")) for p in sorted(folder.glob("*.tif")) if not p.stem.endswith("_mask")]
