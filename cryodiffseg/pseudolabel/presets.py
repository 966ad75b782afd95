"""Named configurations of the pseudo-label stage: ``default`` (the measured best, BENCHMARKS.md) and ``paper``
(the published method as its authors ran it). A preset sets fields; options given on top of it still win.

What ``paper`` sets, beside the settings every configuration shares with the paper (canvas, z-consistency,
threshold and point filters, which are the published values in both): the attention canvas for membranes and
particles, Stable Diffusion v1.4 in float32, the reference's 2000-iteration solver (and, for a user who asks
for the faster direct solver with ``--solver direct``, the reference's effective layer weights), the 2 x 2 cut
of each slice resized to 1024 px with each tile through a quality-95 JPEG round trip (the reference's tile
files), CellPose (its weights must be present), and the reference's greedy de-duplication of points truncated
to whole pixels.
"""

import dataclasses
from typing import Dict

from ..errors import CryoDiffSegError
from ..features.backbone import PAPER_HUB_ID

PRESETS: Dict[str, Dict[str, object]] = {
    "default": {},
    "paper": {
        "membranes": "attention",
        "particles": "attention",
        "backbone.source": PAPER_HUB_ID,
        "backbone.dtype": "float32",
        "solver": "paper",
        "direct.reuse_probability": 0.9,
        "tiling": "quadrisect",
        "tile_jpeg_quality": 95,
        "masks.splitter": "cellpose",
        "points.dedup_mode": "first",
        "points.integer_coordinates": True,
    },
}


def apply_preset(config, name: str):
    """``config`` with the preset's fields set (dotted paths into nested configuration dataclasses)."""
    if name not in PRESETS:
        raise CryoDiffSegError(f"Unknown preset '{name}': use one of {', '.join(PRESETS)}.")
    for path, value in {**PRESETS[name], "preset": name}.items():
        config = _replace(config, path.split("."), value)
    return config


def _replace(config, names, value):
    head, rest = names[0], names[1:]
    return dataclasses.replace(config, **{head: _replace(getattr(config, head), rest, value) if rest else value})
