"""Pseudo-label folders as `cryodiffseg pseudolabel` writes them, built from ground truth for tests."""

from pathlib import Path

import numpy as np

from cryodiffseg.records import write_json
from cryodiffseg.tomoio import read_tomogram, write_mrc, write_text


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
