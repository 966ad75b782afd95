"""Attention of noisy forward passes for a batch of tiles (METHOD section 2).

Each tile is encoded once (at 512 px the VAE costs as much as the UNet) and passed ``num_samples``
times with fresh noise at a random timestep in [0, t_max], t_max = floor(68 / voxel size in nm).
"""

import math
from dataclasses import dataclass
from typing import Iterator, List, Optional

import numpy as np
import torch

from .attention import AttentionCapture, AttentionSample
from ..errors import CryoDiffSegError
from .backbone import Backbone


@dataclass
class FeatureConfig:
    num_samples: int = 4
    max_timestep: Optional[int] = None  # None: floor(68 / voxel size in nm)
    batch_size: int = 4
    seed: int = 0

    def validate(self, num_train_timesteps: Optional[int] = None) -> None:
        """The settings alone, or (with the backbone's ``num_train_timesteps``) also against the backbone."""
        if self.num_samples < 1 or self.batch_size < 1:
            raise CryoDiffSegError(f"Attention needs at least one sample and a batch of one tile, got {self.num_samples} and {self.batch_size}.")
        if self.max_timestep is not None and not 0 <= self.max_timestep < (num_train_timesteps or float("inf")):
            top = f" and below the backbone's {num_train_timesteps} timesteps" if num_train_timesteps else ""
            raise CryoDiffSegError(f"The largest noise timestep must be at least 0{top}, got {self.max_timestep}.")


def default_max_timestep(voxel_size_nm: float, num_train_timesteps: int = 1000) -> int:
    return int(min(max(math.floor(68 / voxel_size_nm), 0), num_train_timesteps - 1))


def tile_attention(
    backbone: Backbone,
    tiles: np.ndarray,
    voxel_size_nm: float,
    config: FeatureConfig,
    keep_heads: bool,
    seed_offset: int = 0,
) -> Iterator[List[AttentionSample]]:
    """uint8 tiles (n, T, T) -> yields, tile by tile, its ``num_samples`` AttentionSamples.

    A generator: each batch of ``config.batch_size`` tiles is captured only when the previous one has been
    consumed, so memory holds one batch's attention however many tiles a slice has (an SD 1.x sample is
    ~0.4 GB head-averaged, ~2.9 GB with its 8 heads).
    """
    t_max = config.max_timestep
    if t_max is None:
        t_max = default_max_timestep(voxel_size_nm, backbone.num_train_timesteps)
    generator = torch.Generator(device=backbone.device).manual_seed(config.seed + seed_offset)
    with AttentionCapture(backbone.unet, keep_heads=keep_heads) as capture:
        for start in range(0, len(tiles), config.batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(tiles[start : start + config.batch_size]))
            batch = (batch.float() / 255.0)[:, None]
            clean = backbone.encode(batch, generator)
            per_tile: List[List[AttentionSample]] = [[] for _ in range(len(batch))]
            for _ in range(config.num_samples):
                timesteps = torch.randint(0, t_max + 1, (len(batch),), generator=generator, device=backbone.device)
                backbone.noisy_pass(clean, timesteps, generator)
                for i, sample in enumerate(capture.collect()):
                    per_tile[i].append(sample)
            yield from per_tile
