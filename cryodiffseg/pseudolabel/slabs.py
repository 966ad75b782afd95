"""Slab specifications: which z-slices of a tomogram are pseudo-labelled.

``A-B`` is an inclusive range (``201-298`` is 98 slices), ``A:B`` a Python-style half-open one
(``201:298`` stops at 297), ``A`` a single slice; several are joined by commas. z is 0-based.
"""

import re
from typing import List, Tuple

from ..errors import CryoDiffSegError

_RANGE = re.compile(r"^\s*(\d+)\s*(?:([-:])\s*(\d+))?\s*$")


def parse_slabs(spec: str, depth: int) -> List[Tuple[int, int]]:
    """Slabs as sorted, merged inclusive (first, last) pairs, validated against ``depth`` slices."""
    if not spec or not spec.strip():
        raise CryoDiffSegError("The slab specification is empty: give z ranges such as 201-298 or 10-20,40-50.")
    ranges = []
    for part in spec.split(","):
        match = _RANGE.match(part)
        if not match:
            raise CryoDiffSegError(
                f"Cannot read slab '{part.strip()}' in '{spec}': use A-B (inclusive), A:B (half-open) or A."
            )
        first, sep, end = match.groups()
        first = int(first)
        last = first if end is None else (int(end) if sep == "-" else int(end) - 1)
        if last < first:
            raise CryoDiffSegError(f"Slab '{part.strip()}' is empty or reversed.")
        if last >= depth:
            raise CryoDiffSegError(
                f"Slab '{part.strip()}' reaches z={last}, but the tomogram has {depth} slices (z = 0-{depth - 1})."
            )
        ranges.append((first, last))
    merged: List[Tuple[int, int]] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def slab_slices(slabs: List[Tuple[int, int]]) -> List[int]:
    return [z for first, last in slabs for z in range(first, last + 1)]
