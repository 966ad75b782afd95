"""Translation between Scipion's inputs and the engine's files: slab specifications, CSV points, JSON records."""

import csv
import glob
import json
import os
import re

from .constants import MODEL_RECORD, MODEL_TARGETS, PSEUDOLABEL_MANIFEST

_RANGE = re.compile(r"^(\d+)(?:\s*([-:])\s*(\d+))?$")
AUTO = "auto"  # the engine chooses a slab inside the sample (pseudolabel --slabs auto)
PROPOSED_SLAB_SLICES = 4  # the slab the form's wizard proposes: as thick as the engine's automatic one


class SlabError(ValueError):
    """A slab specification the engine would reject, worded for the protocol form."""


def parseSlabs(text, tsIds=()):
    """{tsId: engine slab spec} from 'TS_0008: 201-298; TS_0010: auto' (entries split by ';' or lines);
    'auto' alone gives every tomogram of ``tsIds`` an automatic slab."""
    if (text or "").strip().lower() == AUTO:
        return {tsId: AUTO for tsId in tsIds}
    slabs = {}
    for entry in re.split(r"[;\n]", text or ""):
        if not entry.strip():
            continue
        tsId, sep, spec = entry.partition(":")
        tsId, spec = tsId.strip(), spec.strip()
        if not sep or not tsId or not spec:
            raise SlabError(f"'{entry.strip()}' is not 'TSID: RANGES'.")
        if tsId in slabs:
            raise SlabError(f"{tsId} is given twice.")
        if spec.lower() == AUTO:
            slabs[tsId] = AUTO
            continue
        slabSlices(spec)
        slabs[tsId] = ",".join(part.strip() for part in spec.split(","))
    return slabs


def proposeSlabs(depths, automatic=False, slices=PROPOSED_SLAB_SLICES):
    """Slabs text for the form from {tsId: number of z slices}, one line per tomogram: its middle `slices`
    slices (all of a thinner tomogram), or 'auto' (the engine chooses each slab)."""
    lines = []
    for tsId, depth in depths.items():
        if automatic:
            spec = AUTO
        else:
            count = min(slices, depth)
            first = (depth - count) // 2
            spec = f"{first}-{first + count - 1}" if count > 1 else f"{first}"
        lines.append(f"{tsId}: {spec}")
    return "\n".join(lines)


def slabSlices(spec):
    """The 0-based z slices of an engine slab spec: A-B inclusive, A:B half-open, A; comma-separated."""
    slices = []
    for part in spec.split(","):
        match = _RANGE.match(part.strip())
        if not match:
            raise SlabError(f"'{part.strip()}' is not a z range (A-B inclusive, A:B half-open, or A).")
        first, kind, last = match.groups()
        first = int(first)
        end = first + 1 if kind is None else int(last) + (1 if kind == "-" else 0)
        if end <= first:
            raise SlabError(f"'{part.strip()}' is an empty z range.")
        slices.extend(range(first, end))
    return slices


def readManifest(folder):
    """The engine's pseudolabels.json of one tomogram's output folder."""
    with open(os.path.join(folder, PSEUDOLABEL_MANIFEST)) as handle:
        return json.load(handle)


def readPoints(csvFile):
    """[(x, y, z, score or None)] in 0-based voxels of the tomogram, from an engine points CSV."""
    with open(csvFile, newline="") as handle:
        return [(float(row["x"]), float(row["y"]), float(row["z"]),
                 float(row["score"]) if row.get("score") not in (None, "") else None)
                for row in csv.DictReader(handle)]


def readPieces(csvFile):
    """[(piece, x, y, z)] in 0-based voxels of the tomogram, from the engine's membrane pieces CSV."""
    with open(csvFile, newline="") as handle:
        return [(int(row["piece"]), float(row["x"]), float(row["y"]), float(row["z"]))
                for row in csv.DictReader(handle)]


def findOutput(folder, suffix):
    """The one engine file in folder ending with suffix (the prefix is the engine's name for the tomogram)."""
    matches = glob.glob(os.path.join(glob.escape(folder), "*" + suffix))
    if len(matches) != 1:
        raise FileNotFoundError(f"Expected one *{suffix} in {folder}, found {len(matches)}.")
    return matches[0]


def readModelRecords(modelDir):
    """{target: model.json contents} for each trained target (membranes, particles) in an engine model folder.

    A target keeps its record in its folder, or in best/ when the engine keeps best and last weights.
    """
    records = {}
    for target in MODEL_TARGETS:
        for folder in (os.path.join(modelDir, target), os.path.join(modelDir, target, "best")):
            path = os.path.join(folder, MODEL_RECORD)
            if os.path.isfile(path):
                with open(path) as handle:
                    records[target] = json.load(handle)
                break
    return records
