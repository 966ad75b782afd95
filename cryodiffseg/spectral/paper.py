"""The `paper` solver: the reference's gradient objective for the eigen-maps (METHOD section 3).

Maps Z = softmax over channels of a small CNN applied to a learned tensor. Per layer and head, with Z
average-pooled to the layer's grid and each channel L2-normalised, the loss pushes every Rayleigh
quotient z_c^T P_h z_c to 1 and the off-diagonal of Z Z^T to 0. Adam over gradients accumulated for
``accumulate`` iterations. With probability ``reuse_probability`` an iteration reuses the mid- and
up-path attention of the last fresh draw; otherwise it draws a fresh sample (all layers).
"""

import random
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..features.attention import AttentionSample
from ..progress import Progress


@dataclass
class PaperSolverConfig:
    num_maps: int = 12
    hidden_channels: int = 128
    iterations: int = 2000
    accumulate: int = 20
    learning_rate: float = 2e-3
    reuse_probability: float = 0.9
    eigen_weight: float = 2.0
    ortho_weight: float = 2.0
    seed: int = 0


class MapGenerator(nn.Module):
    """A learned (hidden, g, g) tensor through three 3x3 convolutions (BN + ReLU between) to C maps."""

    def __init__(self, grid: int, num_maps: int, hidden: int):
        super().__init__()
        self.seed_tensor = nn.Parameter(torch.randn(1, hidden, grid, grid))
        self.net = nn.Sequential(
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.BatchNorm2d(hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.BatchNorm2d(hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, num_maps, 3, padding=1),
        )

    def forward(self) -> torch.Tensor:
        return self.net(self.seed_tensor).softmax(dim=1)


def layer_terms(maps: torch.Tensor, probs: torch.Tensor):
    """Rayleigh quotients (heads x C) and off-diagonal Gram entries of ``maps`` (1, C, g, g) on one layer."""
    grid = int(round(probs.shape[-1] ** 0.5))
    z = F.adaptive_avg_pool2d(maps, grid).flatten(2)[0]  # C x N
    z = F.normalize(z, dim=-1)
    quotients = torch.einsum("cn,hnm,cm->hc", z, probs, z)
    gram = z @ z.T
    off_diagonal = gram[~torch.eye(gram.shape[0], dtype=torch.bool, device=gram.device)]
    return quotients.reshape(-1), off_diagonal


def paper_eigenmaps(
    samples: Sequence[AttentionSample],
    config: PaperSolverConfig = PaperSolverConfig(),
    draw: Callable[[], AttentionSample] = None,
    device: str = "cpu",
    progress_label: str = "",
) -> np.ndarray:
    """Eigen-maps (C, g, g) in descending singular-value order, from per-head attention ``samples``.

    A fresh draw picks one of ``samples`` at random unless ``draw`` supplies new ones (e.g. a new noisy
    pass of the backbone).
    """
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    draw = draw or (lambda: samples[rng.randrange(len(samples))])
    to_device = lambda sample: {name: layer.probs.to(device) for name, layer in sample.items()}  # noqa: E731
    grid = max(layer.grid for layer in samples[0].values())
    generator = MapGenerator(grid, config.num_maps, config.hidden_channels).to(device)
    optimiser = torch.optim.Adam(generator.parameters(), lr=config.learning_rate)

    fresh_names = list(samples[0])
    reusable = [name for name, layer in samples[0].items() if not layer.in_down_path]
    buffer = None
    progress = Progress(progress_label or "paper solver", config.iterations + 1, min_interval=10.0)
    for iteration in range(config.iterations + 1):
        if buffer is not None and rng.random() < config.reuse_probability:
            layers = {name: buffer[name] for name in reusable}
        else:
            layers = to_device(draw())
            buffer = {name: layers[name] for name in reusable}
            layers = {name: layers[name] for name in fresh_names}
        maps = generator()
        quotients, off_diagonal = zip(*(layer_terms(maps, probs) for probs in layers.values()))
        loss = config.eigen_weight * (torch.cat(quotients) - 1).abs().mean()
        loss = loss + config.ortho_weight * torch.cat(off_diagonal).pow(2).mean()
        loss.backward()
        if iteration % config.accumulate == 0 and iteration != 0:
            optimiser.step()
            optimiser.zero_grad()
        progress.step()

    with torch.no_grad():
        z = F.normalize(generator().flatten(2)[0], dim=-1)  # C x N
        u, _, _ = torch.linalg.svd(z.T, full_matrices=False)  # N x C, descending singular values
    return u.T.reshape(config.num_maps, grid, grid).cpu().numpy().astype(np.float32)
