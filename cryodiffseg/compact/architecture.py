"""The compact pixel-space diffusion UNet: small enough for CPU, with self-attention at two resolutions.

A 128 x 128 grey tile enters with its 2 x 2 pixel blocks folded into 4 channels (a lossless
rearrangement, so the noise stays pixel-space Gaussian) and runs through three levels of 64, 32 and
16 px; the two coarse levels and the middle block carry self-attention (32 x 32 and 16 x 16 tokens), so
the attention capture and both spectral solvers apply to it exactly as to Stable Diffusion.
"""

from dataclasses import asdict, dataclass
from typing import Tuple


@dataclass(frozen=True)
class CompactUNetConfig:
    sample_size: int = 64  # after folding 2 x 2 pixel blocks: 128-px tiles
    block_out_channels: Tuple[int, ...] = (32, 64, 128)
    layers_per_block: int = 1
    attention_head_dim: int = 32
    norm_num_groups: int = 16

    def build(self):
        from diffusers import UNet2DModel

        down = ("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D")
        up = ("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D")
        settings = asdict(self)
        settings["block_out_channels"] = tuple(settings["block_out_channels"])
        return UNet2DModel(in_channels=4, out_channels=4, down_block_types=down, up_block_types=up, **settings)


def build_scheduler(num_train_timesteps: int = 1000):
    """The standard linear DDPM schedule of pixel-space diffusion models."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule="linear", beta_start=1e-4, beta_end=0.02)
