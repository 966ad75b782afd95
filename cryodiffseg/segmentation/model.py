"""The saved membrane model: a ``membrane-unet`` checkpoint folder and how to load it back.

Its record (``model.json``) carries what segmentation needs besides the weights: the U-Net
configuration, the input normalisation and the voxel size the model was trained at.
"""

import os
from typing import Tuple

from ..checkpoints import load_checkpoint, load_weights
from ..errors import CryoDiffSegError
from ..tomoio import require_voxel_size
from .normalisation import NORMALISATION
from .unet import UNet2D, UNetConfig

MODEL_KIND = "membrane-unet"
CLASSES = ("background", "membrane")


def load_membrane_model(model_dir: os.PathLike) -> Tuple[UNet2D, dict]:
    """(model in eval mode on the CPU, record) of a trained membrane model; a clear error otherwise."""
    state, record = load_checkpoint(model_dir, MODEL_KIND)
    try:
        config = UNetConfig(**record["architecture"])
        voxel_size = float(record["voxel_size_A"])
        normalisation = record["normalisation"]
        model = UNet2D(config)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CryoDiffSegError(f"The record model.json in {model_dir} is incomplete or malformed ({exc!r}).") from None
    if normalisation != NORMALISATION:
        raise CryoDiffSegError(f"The model in {model_dir} expects '{normalisation}' inputs; this version only knows '{NORMALISATION}'.")
    require_voxel_size(voxel_size, f"The model in {model_dir} records a training voxel size of")
    load_weights(model, state, str(model_dir))
    return model.eval(), record
