"""The pseudo-label folder's record (``pseudolabels.json``): written by the pipeline, read by training."""

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence

from ..errors import CryoDiffSegError

MANIFEST = "pseudolabels.json"


@dataclass
class PseudoLabelManifest:
    folder: Path
    tomogram: Path
    voxel_size_A: float
    labelled_slices: List[int]
    membrane_mask: Optional[Path]  # full-shape int8 MRC; only labelled slices carry labels
    points: Optional[Path]  # CSV x, y, z voxels
    calibration_points: Optional[Path] = None  # CSV x, y, z voxels of held-out slices (no model trains on them)
    calibration_slices: List[int] = field(default_factory=list)


def read_manifest(folder: os.PathLike, need: Sequence[str] = ()) -> PseudoLabelManifest:
    """The record of a pseudo-label folder; ``need`` names outputs that must be listed and present."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise CryoDiffSegError(f"{folder} is not a pseudo-label folder: {MANIFEST} is missing (run cryodiffseg pseudolabel).")
    try:
        record = json.loads(path.read_text())
        outputs = record.get("outputs") or {}
        manifest = PseudoLabelManifest(
            folder=folder,
            tomogram=Path(record["tomogram"]),
            voxel_size_A=float(record["voxel_size_A"]),
            labelled_slices=sorted({int(z) for z in record["labelled_slices"]}),
            membrane_mask=folder / outputs["membrane_mask"] if outputs.get("membrane_mask") else None,
            points=folder / outputs["points"] if outputs.get("points") else None,
            calibration_points=folder / outputs["calibration_points"] if outputs.get("calibration_points") else None,
            calibration_slices=sorted({int(z) for z in record.get("calibration_slices") or []}),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CryoDiffSegError(f"{path} is incomplete or malformed ({exc!r}).") from None
    for name in need:
        output = getattr(manifest, name)
        if output is None:
            raise CryoDiffSegError(f"{path} lists no {name.replace('_', ' ')}.")
        if not output.is_file():
            raise CryoDiffSegError(f"The {name.replace('_', ' ')} {output} named in {path} is missing.")
    return manifest


def content_fingerprint(folder: os.PathLike) -> str:
    """A hash of what training reads from a pseudo-label folder (the mask's labelled slices, the points, the
    held-out points): a resumed training must refuse labels that changed under the same folder name."""
    import numpy as np

    from ..tomoio import read_tomogram

    manifest = read_manifest(folder)
    digest = hashlib.sha256(json.dumps({"slices": manifest.labelled_slices, "calibration": manifest.calibration_slices}).encode())
    if manifest.membrane_mask is not None and manifest.membrane_mask.is_file():
        mask = read_tomogram(manifest.membrane_mask, voxel_size=manifest.voxel_size_A, check_values=False).data
        for z in manifest.labelled_slices:
            if 0 <= z < mask.shape[0]:
                digest.update(np.ascontiguousarray(mask[z]).tobytes())
    for path in (manifest.points, manifest.calibration_points):
        if path is not None and path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
