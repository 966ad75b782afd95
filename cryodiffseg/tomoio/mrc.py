"""MRC output with the geometry a downstream program needs: voxel size and origin in the header."""

import os
from pathlib import Path
from typing import Optional, Sequence

import mrcfile
import numpy as np

from .atomic import atomic_path


def write_mrc(
    path: os.PathLike,
    data: np.ndarray,
    voxel_size: float,
    origin: Optional[Sequence[float]] = None,
) -> Path:
    """Write a (z, y, x) volume atomically; ``voxel_size`` in Angstrom, ``origin`` (x, y, z) in Angstrom."""
    data = np.asarray(data)
    if data.dtype == np.bool_:
        data = data.astype(np.int8)
    elif data.dtype == np.float64:
        data = data.astype(np.float32)
    with atomic_path(path, suffix=".mrc") as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(data)
            mrc.voxel_size = float(voxel_size)
            if origin is not None:
                mrc.header.origin = tuple(float(v) for v in origin)
    return Path(path)
