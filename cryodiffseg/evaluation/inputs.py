"""Reading what is evaluated: binary masks from MRC files and particle centres from CSV files."""

import csv
import os
from pathlib import Path
from typing import Sequence, Tuple

import numpy as np

from ..errors import CryoDiffSegError


def read_mask(path: os.PathLike) -> Tuple[np.ndarray, float]:
    """(memory-mapped (z, y, x) mask, voxel size in A) of an MRC file; nonzero voxels are inside."""
    import mrcfile

    path = Path(path)
    if not path.is_file():
        raise CryoDiffSegError(f"Mask not found: {path}")
    try:
        mrc = mrcfile.mmap(path, mode="r", permissive=False)
    except (ValueError, OSError, EOFError) as exc:
        raise CryoDiffSegError(f"Cannot read {path} as MRC (unreadable or truncated file): {exc}") from None
    if mrc.data is None or mrc.data.ndim != 3:
        raise CryoDiffSegError(f"{path} does not hold a 3-D volume.")
    return mrc.data, float(mrc.voxel_size.x)


def read_points(path: os.PathLike, columns: Sequence[str] = ("x", "y", "z")) -> np.ndarray:
    """(n, len(columns)) numbers from a CSV file whose header names ``columns`` (default: x, y, z voxels).

    Other columns (a score, a class) are ignored, so picker output and pseudo-point lists both read.
    """
    path = Path(path)
    if not path.is_file():
        raise CryoDiffSegError(f"Point list not found: {path}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:  # -sig: spreadsheets start with a byte-order mark
            rows = list(csv.reader(handle))
    except (UnicodeDecodeError, csv.Error):
        raise CryoDiffSegError(f"{path} is not a text CSV file (UTF-8): a point list needs x, y, z columns.") from None
    names = ", ".join(columns)
    if not rows:
        raise CryoDiffSegError(f"{path} is empty: a point list needs a header with {names} columns.")
    header = [name.strip().lower() for name in rows[0]]
    missing = [name for name in columns if name not in header]
    if missing:
        raise CryoDiffSegError(f"{path} has no {', '.join(missing)} column(s) in its header {rows[0]}.")
    indices = [header.index(name) for name in columns]
    points = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        try:
            points.append([float(row[c]) for c in indices])
        except (ValueError, IndexError):
            raise CryoDiffSegError(f"{path}, line {line}: cannot read {names} numbers from {row}.") from None
    points = np.array(points, dtype=np.float64).reshape(-1, len(columns))
    if not np.isfinite(points).all():
        raise CryoDiffSegError(f"{path} contains NaN or infinite values.")
    return points
