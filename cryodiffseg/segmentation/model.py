"""The saved membrane model: a ``membrane-unet`` checkpoint folder and how to load it back.

Its record (``model.json``) carries what segmentation needs besides the weights: the U-Net
configuration, the input normalisation and the voxel size the model was trained at.
"""

import os
from typing import Tuple

from ..checkpoints import load_checkpoint
from ..errors import CryoDiffSegError
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
    except (KeyError, TypeError, ValueError) as exc:
        raise CryoDiffSegError(f"The record model.json in {model_dir} is incomplete or malformed ({exc!r}).") from None
    if normalisation != NORMALISATION:
        raise CryoDiffSegError(f"The model in {model_dir} expects '{normalisation}' inputs; this version only knows '{NORMALISATION}'.")
    if not voxel_size > 0:
        raise CryoDiffSegError(f"The model in {model_dir} records an invalid training voxel size ({voxel_size}).")
    model = UNet2D(config)
    try:
        model.load_state_dict(state)
    except RuntimeError:
        raise CryoDiffSegError(f"The weights in {model_dir} do not match the architecture in its model.json.") from None
    return model.eval(), record
