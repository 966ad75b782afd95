"""Picked particles on disk: a CSV (x, y, z, score) and a RELION-style STAR file.

Coordinates are 0-based voxel indices of the tomogram that was picked (x, y, z = array [z, y, x]),
the same in both files. The STAR file follows the RELION 3 sub-tomogram convention: one
``data_particles`` table naming the tomogram file in ``_rlnMicrographName``, with
``_rlnCoordinateX/Y/Z`` in voxels of that tomogram, plus RELION 4's ``_rlnTomoName`` (the file name
without extension) and ``_rlnAutopickFigureOfMerit`` (the heatmap score). RELION 4 itself reads
coordinates in unbinned tilt-series pixels, so multiply by the tomogram's binning before importing
there; RELION 5's centred Angstrom coordinates are not written.
"""

import csv
import io
import os
from pathlib import Path

import numpy as np

from ..tomoio import write_text

STAR_COLUMNS = (
    "_rlnMicrographName",
    "_rlnTomoName",
    "_rlnCoordinateX",
    "_rlnCoordinateY",
    "_rlnCoordinateZ",
    "_rlnAutopickFigureOfMerit",
)


def write_particles_csv(path: os.PathLike, points_xyz: np.ndarray, scores: np.ndarray) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["x", "y", "z", "score"])
    for (x, y, z), score in zip(points_xyz, scores):
        writer.writerow([f"{x:.2f}", f"{y:.2f}", f"{z:.2f}", f"{score:.4f}"])
    return write_text(path, buffer.getvalue())


def write_particles_star(path: os.PathLike, points_xyz: np.ndarray, scores: np.ndarray, tomogram_path: os.PathLike) -> Path:
    tomogram_path = Path(tomogram_path)
    micrograph, name = _star_word(tomogram_path.name), _star_word(tomogram_path.stem)
    lines = ["", "# written by cryodiffseg: coordinates in voxels of the picked tomogram (0-based)", "",
             "data_particles", "", "loop_"]
    lines += [f"{column} #{number}" for number, column in enumerate(STAR_COLUMNS, start=1)]
    lines += [f"{micrograph} {name} {x:.2f} {y:.2f} {z:.2f} {score:.4f}" for (x, y, z), score in zip(points_xyz, scores)]
    return write_text(path, "\n".join(lines) + "\n\n")


def _star_word(text: str) -> str:
    """A STAR value: quoted when it holds white space (or is empty)."""
    return f'"{text}"' if not text or any(c.isspace() for c in text) else text
