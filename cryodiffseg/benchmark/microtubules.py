"""Real data: how much of the real microtubules the membrane pseudo-mask takes for membrane.

Two sources of the membrane mask: the attention canvas's non-round class (per backbone), and the default's
sheet evidence. Microtubules are not membranes: here a high recall is the false-membrane rate on them. The
TIFF patches store no voxel size; they are at about 25 A (see the data's README).
"""

from pathlib import Path
from typing import List, Tuple

import numpy as np
import tifffile

from ..evaluation import segmentation_metrics
from ..features.backbone import BackboneConfig
from ..pseudolabel.pipeline import PseudoLabelConfig, run_pseudolabel
from ..tomoio import read_tomogram

PATCH_VOXEL_SIZE_A = 25.0
SLAB_SLICES = 8


def run_microtubule_bench(patches: List[Tuple[Path, Path]], work: Path, sources: List[Tuple[str, str, str]], device: str = "cpu") -> dict:
    """``sources``: (label, membrane source, backbone) per row group."""
    rows = []
    for label, membranes, source in sources:
        for tomogram, mask_path in patches:
            depth = read_tomogram(tomogram, voxel_size=PATCH_VOXEL_SIZE_A, check_values=False).shape[0]
            first = depth // 2 - SLAB_SLICES // 2
            slab = list(range(first, first + SLAB_SLICES))
            result = run_pseudolabel(
                tomogram,
                Path(work) / label / tomogram.stem,
                PseudoLabelConfig(slabs=f"{slab[0]}-{slab[-1]}", voxel_size=PATCH_VOXEL_SIZE_A, membranes=membranes,
                                  particles="attention" if membranes == "attention" else "blobs",
                                  backbone=BackboneConfig(source=source, device=device)),
            )
            import mrcfile

            with mrcfile.open(result.mask) as pseudo:
                predicted = np.asarray(pseudo.data) > 0
            truth = tifffile.imread(mask_path) > 0
            scores = segmentation_metrics(predicted, truth, slab)
            rows.append({
                "backbone": label,
                "patch": tomogram.name,
                "slab": f"{slab[0]}-{slab[-1]}",
                "dice": round(scores["dice"], 3),
                "recall": round(scores["recall"], 3),
                "precision": round(scores["precision"], 3),
                "microtubule_fraction": round(float(truth[slab].mean()), 4),
                "pseudo_fraction": round(float(predicted[slab].mean()), 4),
            })
    return {"voxel_size_A": PATCH_VOXEL_SIZE_A, "rows": rows}
