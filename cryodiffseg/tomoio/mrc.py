"""MRC output with the geometry a downstream program needs: voxel size and origin in the header.

Memory-mapped outputs reserve their disk blocks when created: a full disk then fails at once with an
error, instead of killing the process (SIGBUS) when a page of the map is first written.
"""

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


def new_mrc_map(path: os.PathLike, shape: Sequence[int], dtype) -> "mrcfile.mrcmemmap.MrcMemmap":
    """A new writable memory-mapped MRC file whose data blocks are allocated on disk (ENOSPC raised here)."""
    mrc = mrcfile.new_mmap(str(path), shape=tuple(shape), mrc_mode=mrcfile.utils.mode_from_dtype(np.dtype(dtype)), overwrite=True)
    try:
        with open(path, "r+b") as handle:
            os.posix_fallocate(handle.fileno(), 0, os.fstat(handle.fileno()).st_size)
    except OSError as exc:
        mrc.close()
        raise OSError(exc.errno, exc.strerror, str(Path(path).parent)) from None  # the folder: the file is temporary
    except BaseException:
        mrc.close()
        raise
    return mrc
