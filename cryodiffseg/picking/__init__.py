"""Particle picking trained on pseudo-points: a compact 2.5-D heatmap network, its training and picking.

``train_picker`` learns Gaussian particle-centre heatmaps from the labelled slices of pseudo-label
folders; ``pick_particles`` scores a whole tomogram chunk by chunk and keeps the heatmap maxima
(non-maximum suppression at the particle radius), writing CSV and RELION-style STAR lists. Why 2.5-D
rather than 2-D or 3-D, with the measurements, is in ``network``.
"""

from .network import PickerConfig
from .peaks import local_maxima, non_max_suppression
from .pick import PickingConfig, load_picker, pick_particles
from .train import PickerTrainingConfig, train_picker

__all__ = [
    "PickerConfig",
    "PickerTrainingConfig",
    "PickingConfig",
    "load_picker",
    "local_maxima",
    "non_max_suppression",
    "pick_particles",
    "train_picker",
]
