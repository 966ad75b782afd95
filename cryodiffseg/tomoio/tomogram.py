"""Reading tomograms (MRC/REC memory-mapped, TIFF stacks) with the checks every stage relies on.

Arrays are numpy order (z, y, x); voxel sizes are Angstrom; origins are (x, y, z) Angstrom.
"""

import logging
import mmap
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from ..errors import CryoDiffSegError

log = logging.getLogger("cryodiffseg")

MRC_SUFFIXES = {".mrc", ".rec", ".mrcs", ".map", ".st", ".ali"}
TIFF_SUFFIXES = {".tif", ".tiff"}

# A tomogram voxel below 2 A is almost always a header written in nm (1.348 nm read as "1.348 A");
# above 100 A no cellular feature survives. Both need an explicit --voxel-size.
PLAUSIBLE_VOXEL_SIZE_A = (2.0, 100.0)
# Whatever a header, --voxel-size or a model record says, no tomogram has voxels outside this: a value
# beyond it is a typo or a unit error, and resampling to it would ask for absurd amounts of memory.
VOXEL_SIZE_LIMITS_A = (0.5, 1000.0)

# Chunk of slices scanned at a time when checking values, so a memory-mapped volume is never loaded whole.
_SCAN_SLICES = 16


@dataclass
class Tomogram:
    """A validated volume: ``data`` may be a read-only memory map."""

    path: Path
    data: np.ndarray
    voxel_size: float
    origin: Tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def shape(self) -> Tuple[int, int, int]:
        return tuple(int(s) for s in self.data.shape)

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def voxel_size_nm(self) -> float:
        return self.voxel_size / 10.0


def read_tomogram(path: os.PathLike, voxel_size: Optional[float] = None, check_values: bool = True) -> Tomogram:
    """Open ``path`` and validate it; ``voxel_size`` (A) overrides the header.

    Raises CryoDiffSegError with one explanatory sentence for every input the pipeline cannot use.
    """
    path = Path(path)
    if path.is_dir():
        raise CryoDiffSegError(f"{path} is a folder: give the tomogram file itself.")
    if not path.is_file():
        raise CryoDiffSegError(f"Tomogram not found: {path}")
    suffix = path.suffix.lower()
    if suffix in MRC_SUFFIXES:
        data, header_voxel, origin = _open_mrc(path)
    elif suffix in TIFF_SUFFIXES:
        data, header_voxel, origin = _open_tiff(path), None, (0.0, 0.0, 0.0)
    else:
        raise CryoDiffSegError(
            f"Unsupported tomogram format '{path.suffix}' for {path}: use MRC/REC or a TIFF stack."
        )
    if data.ndim != 3:
        raise CryoDiffSegError(f"{path} holds {data.ndim}-D data of shape {data.shape}: a tomogram must be 3-D.")
    if min(data.shape) < 2:
        raise CryoDiffSegError(f"{path} has shape {data.shape} (z, y, x): a tomogram needs at least 2 voxels per axis.")
    if np.iscomplexobj(data):
        raise CryoDiffSegError(f"{path} holds complex values: a tomogram must be real-valued.")
    if check_values:
        _check_values(path, data)
    voxel = _resolve_voxel_size(path, header_voxel, voxel_size)
    log.info("Read %s: shape (z, y, x) %s, %s, voxel size %.3f A", path, data.shape, data.dtype, voxel)
    return Tomogram(path=path, data=data, voxel_size=voxel, origin=origin)


def _open_mrc(path: Path):
    import mrcfile

    try:
        mrc = mrcfile.mmap(path, mode="r", permissive=False)
    except (ValueError, OSError, EOFError) as exc:
        raise CryoDiffSegError(f"Cannot read {path} as MRC (unreadable or truncated file): {exc}") from None
    data = mrc.data
    if data is None:
        raise CryoDiffSegError(f"{path} has an MRC header but no data.")
    voxel = float(mrc.voxel_size.x)
    origin = tuple(float(v) for v in (mrc.header.origin.x, mrc.header.origin.y, mrc.header.origin.z))
    return data, voxel, origin


def _open_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        try:
            return tifffile.memmap(path, mode="r")
        except ValueError:  # compressed or tiled pages cannot be memory-mapped
            return tifffile.imread(path)
    except Exception as exc:  # tifffile raises many types for damaged files
        raise CryoDiffSegError(f"Cannot read {path} as a TIFF stack: {exc}") from None


def _check_values(path: Path, data: np.ndarray) -> None:
    """NaN, Inf or a constant volume refused; streamed in the file's own type, pages released per chunk,
    so the check costs one chunk of memory whatever the tomogram's size."""
    lo, hi = np.inf, -np.inf
    for start in range(0, data.shape[0], _SCAN_SLICES):
        chunk = data[start : start + _SCAN_SLICES]
        finite = np.isfinite(chunk)
        if not finite.all():
            bad = start + int(np.argwhere(~finite)[0][0])
            raise CryoDiffSegError(f"{path} contains NaN or Inf values (first in slice z={bad}).")
        lo, hi = min(lo, float(chunk.min())), max(hi, float(chunk.max()))
        release_pages(data)
    if lo == hi:
        raise CryoDiffSegError(f"{path} is constant (every voxel = {lo:g}): there is nothing to segment.")


def release_pages(volume: np.ndarray) -> None:
    """Drop the resident pages of a memory-mapped array (after writing them out); no-op for other arrays."""
    mapping = getattr(volume, "_mmap", None)  # numpy keeps the mmap of a memmap and of its views here
    if mapping is None or not hasattr(mmap, "MADV_DONTNEED"):
        return
    if volume.flags.writeable:
        volume.flush()
    mapping.madvise(mmap.MADV_DONTNEED)


def require_voxel_size(value: float, what: str) -> float:
    """``value`` (A) if it lies within VOXEL_SIZE_LIMITS_A; ``what`` begins the error's sentence."""
    low, high = VOXEL_SIZE_LIMITS_A
    if not low <= value <= high:  # NaN too
        raise CryoDiffSegError(f"{what} {value:g} A: a voxel size must lie between {low:g} and {high:g} A.")
    return float(value)


def _resolve_voxel_size(path: Path, header: Optional[float], override: Optional[float]) -> float:
    if override is not None:
        require_voxel_size(override, "--voxel-size gives")
        if header and abs(header - override) > 1e-3 * override:
            log.info("Voxel size %.3f A from the command line overrides %.3f A in the header of %s", override, header, path)
        return float(override)
    lo, hi = PLAUSIBLE_VOXEL_SIZE_A
    if header is None:
        raise CryoDiffSegError(f"{path} stores no voxel size: give it with --voxel-size (Angstrom).")
    if header <= 0:
        raise CryoDiffSegError(f"The header of {path} gives voxel size {header:g} A: give the real one with --voxel-size (Angstrom).")
    if not lo <= header <= hi:
        hint = " (a header written in nm reads like this)" if header < lo else ""
        raise CryoDiffSegError(
            f"The header of {path} gives an implausible voxel size of {header:g} A{hint}; "
            f"expected {lo:g}-{hi:g} A. Give the real one with --voxel-size (Angstrom)."
        )
    return header
