"""Membrane segmentation: a 2-D U-Net trained on pseudo-labels, then run over whole tomograms."""

from .inference import SegmentationConfig, segment_tomogram
from .model import load_membrane_model
from .train import MembraneTrainingConfig, train_membrane_model
from .unet import UNet2D, UNetConfig

__all__ = [
    "MembraneTrainingConfig",
    "SegmentationConfig",
    "UNet2D",
    "UNetConfig",
    "load_membrane_model",
    "segment_tomogram",
    "train_membrane_model",
]
