"""The 2-D membrane U-Net of the method's reference configuration (METHOD section 8).

Five levels of 16/32/64/128/256 channels; every level is two 3x3 convolutions with batch norm and leaky
ReLU, with dropout between them growing with depth (0.05 ... 0.5). The decoder up-samples with
transposed convolutions, joins the encoder's skip connection and runs a dropout-free block.
"""

from dataclasses import asdict, dataclass
from typing import Tuple

import torch
from torch import nn


@dataclass(frozen=True)
class UNetConfig:
    """How to build a UNet2D; the defaults are the reference configuration."""

    channels: Tuple[int, ...] = (16, 32, 64, 128, 256)
    dropouts: Tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.5)  # per encoder level
    in_channels: int = 1
    classes: int = 2
    negative_slope: float = 0.01  # leaky ReLU

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))  # lists from JSON
        object.__setattr__(self, "dropouts", tuple(float(d) for d in self.dropouts))
        if len(self.channels) < 2 or len(self.channels) != len(self.dropouts):
            raise ValueError("A UNet needs at least 2 levels and one dropout rate per level.")

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this (one halving per level below the first)."""
        return 2 ** (len(self.channels) - 1)

    def to_dict(self) -> dict:
        return asdict(self)


class ConvBlock(nn.Sequential):
    """3x3 conv, batch norm, leaky ReLU, dropout, 3x3 conv, batch norm, leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float, negative_slope: float):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.LeakyReLU(negative_slope),
            nn.Dropout(dropout),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.LeakyReLU(negative_slope),
        )


class DownBlock(nn.Sequential):
    """Halve the resolution, then a ConvBlock."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float, negative_slope: float):
        super().__init__(nn.MaxPool2d(2), ConvBlock(in_channels, out_channels, dropout, negative_slope))


class UpBlock(nn.Module):
    """Double the resolution with a transposed conv, concatenate the skip connection, then a ConvBlock."""

    def __init__(self, deep_channels: int, skip_channels: int, negative_slope: float):
        super().__init__()
        self.upsample = nn.ConvTranspose2d(deep_channels, skip_channels, kernel_size=2, stride=2)
        self.block = ConvBlock(2 * skip_channels, skip_channels, 0.0, negative_slope)

    def forward(self, deep: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.block(torch.cat([skip, self.upsample(deep)], dim=1))


class UNet2D(nn.Module):
    """(batch, in_channels, H, W) -> class logits (batch, classes, H, W); H, W multiples of size_multiple."""

    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__()
        self.config = config
        channels, dropouts, slope = config.channels, config.dropouts, config.negative_slope
        self.encoder = nn.ModuleList([ConvBlock(config.in_channels, channels[0], dropouts[0], slope)])
        for level in range(1, len(channels)):
            self.encoder.append(DownBlock(channels[level - 1], channels[level], dropouts[level], slope))
        self.decoder = nn.ModuleList(
            UpBlock(channels[level + 1], channels[level], slope) for level in reversed(range(len(channels) - 1))
        )
        self.head = nn.Conv2d(channels[0], config.classes, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        x = skips.pop()
        for block in self.decoder:
            x = block(x, skips.pop())
        return self.head(x)
