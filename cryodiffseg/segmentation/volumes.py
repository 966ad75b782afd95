"""Chunked plane access to memory-mapped volumes, so segmentation holds one chunk in memory at a time.

Pages of a memory map that were read or written stay counted in the process's resident memory until
they are unmapped, so streaming a whole volume through one map would end with the volume resident.
``release_pages`` (in tomoio) hands them back to the page cache after each chunk (written data stays in the file).
"""

import contextlib
import os
from typing import Optional, Sequence, Tuple

import numpy as np

from ..tomoio import new_mrc_map

AXES = ("z", "y", "x")  # planes across an axis: z -> (y, x) slices, y -> (z, x), x -> (z, y)
CHUNK_VOXELS = 2**23  # default chunk: 32 MiB of float32, 8 planes of 1024 x 1024


def plane_shape(shape: Sequence[int], axis: str) -> Tuple[int, int]:
    z, y, x = shape
    return {"z": (y, x), "y": (z, x), "x": (z, y)}[axis]


def planes_per_chunk(shape: Sequence[int], axis: str, chunk_planes: Optional[int]) -> int:
    """``chunk_planes`` if given, else as many planes as make about CHUNK_VOXELS (at least one)."""
    rows, columns = plane_shape(shape, axis)
    return chunk_planes or max(1, CHUNK_VOXELS // (rows * columns))


def read_planes(volume: np.ndarray, axis: str, start: int, stop: int) -> np.ndarray:
    """Planes ``start:stop`` across ``axis``, copied into a new float32 array (n, rows, columns)."""
    position = AXES.index(axis)
    index = [slice(None)] * 3
    index[position] = slice(start, stop)
    return np.array(np.moveaxis(volume[tuple(index)], position, 0), dtype=np.float32, order="C")


def write_planes(volume: np.ndarray, axis: str, start: int, planes: np.ndarray) -> None:
    position = AXES.index(axis)
    index = [slice(None)] * 3
    index[position] = slice(start, start + len(planes))
    volume[tuple(index)] = np.moveaxis(planes, 0, position)


@contextlib.contextmanager
def new_mrc_volume(path: os.PathLike, shape: Sequence[int], dtype, voxel_size: float, origin: Sequence[float]):
    """A new memory-mapped MRC file with the given geometry; closed (header and data flushed) on exit."""
    mrc = new_mrc_map(path, shape, dtype)
    try:
        mrc.voxel_size = float(voxel_size)
        mrc.header.origin = tuple(float(v) for v in origin)
        yield mrc
    finally:
        mrc.close()


class RunningStatistics:
    """Minimum, maximum, mean and RMS deviation of a volume seen chunk by chunk, for the MRC header."""

    def __init__(self):
        self.count = 0
        self.total = 0.0
        self.squares = 0.0
        self.minimum: Optional[float] = None
        self.maximum: Optional[float] = None

    def add(self, chunk: np.ndarray) -> None:
        for plane in np.asarray(chunk):  # plane by plane: float64 copies of one plane at most
            values = plane.astype(np.float64)
            self.count += values.size
            self.total += float(values.sum())
            self.squares += float(np.square(values).sum())
            low, high = float(values.min()), float(values.max())
            self.minimum = low if self.minimum is None else min(self.minimum, low)
            self.maximum = high if self.maximum is None else max(self.maximum, high)

    @property
    def mean(self) -> float:
        return self.total / self.count

    def write_header(self, mrc) -> None:
        mean = self.mean
        mrc.header.dmin, mrc.header.dmax, mrc.header.dmean = self.minimum, self.maximum, mean
        mrc.header.rms = max(self.squares / self.count - mean * mean, 0.0) ** 0.5
