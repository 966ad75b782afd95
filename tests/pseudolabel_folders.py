"""Pseudo-label folders as `cryodiffseg pseudolabel` writes them, built from ground truth for tests."""

from pathlib import Path

import numpy as np

from cryodiffseg.records import write_json
from cryodiffseg.synthetic import PhantomConfig, generate_phantom, write_phantom
from cryodiffseg.tomoio import read_tomogram, write_mrc, write_text

CHAIN_LABELLED = [20, 21, 22, 23]


def write_pseudolabel_folder(folder, tomogram_path, labelled_slices, mask=None, points_xyz=None, voxel_size=None,
                             calibration_xyz=None, calibration_slices=()):
    """Write the manifest plus a membrane mask (full shape, int8) and/or points CSV (x, y, z voxels), and
    optionally held-out calibration points with the slices they were found on."""
    folder, tomogram_path = Path(folder), Path(tomogram_path)
    tomogram = read_tomogram(tomogram_path, voxel_size=voxel_size)
    outputs = {}
    if mask is not None:
        write_mrc(folder / "mask.mrc", np.asarray(mask).astype(np.int8), tomogram.voxel_size)
        outputs["membrane_mask"] = "mask.mrc"
    if points_xyz is not None:
        rows = "".join(f"{x:.2f},{y:.2f},{int(z)}\n" for x, y, z in np.asarray(points_xyz).reshape(-1, 3))
        write_text(folder / "points.csv", "x,y,z\n" + rows)
        outputs["points"] = "points.csv"
    if calibration_xyz is not None:
        rows = "".join(f"{x:.2f},{y:.2f},{z:.2f}\n" for x, y, z in np.asarray(calibration_xyz).reshape(-1, 3))
        write_text(folder / "calibration.csv", "x,y,z\n" + rows)
        outputs["calibration_points"] = "calibration.csv"
    write_json(folder / "pseudolabels.json", {
        "tomogram": str(tomogram_path.resolve()),
        "tomogram_name": tomogram_path.stem,
        "shape_zyx": list(mask.shape) if mask is not None else list(tomogram.shape),
        "voxel_size_A": tomogram.voxel_size,
        "labelled_slices": list(labelled_slices),
        "calibration_slices": list(calibration_slices),
        "outputs": outputs,
    })
    return folder


def chain_phantom(root):
    """(phantom files, pseudo-label folder) of a small phantom whose slabs 20-23 carry its true membranes and
    particles: the input of the command-line chain tests."""
    root = Path(root)
    phantom = generate_phantom(PhantomConfig(shape=(40, 96, 96), seed=2, n_ribosomes=6, membrane_sheet=False, n_vesicles=1))
    data = write_phantom(phantom, root / "data")
    points = [(x, y, min(CHAIN_LABELLED, key=lambda s: abs(s - z))) for x, y, z in phantom.particles]
    assert points
    folder = write_pseudolabel_folder(root / "pl", data["tomogram"], CHAIN_LABELLED, mask=phantom.membrane, points_xyz=points)
    return data, folder
