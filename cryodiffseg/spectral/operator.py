"""The pooled, layer- and head-averaged attention operator whose leading eigenvectors are the eigen-maps.

M = mean over layers l (and heads, and noise samples) of s_l^2 A_l^T ((P_l + P_l^T) / 2) A_l, where A_l
average-pools a map on the finest attention grid down to layer l's grid (s_l x s_l blocks). Since
s^2 A^T y is y repeated over each block, M z = mean_l repeat_l(Psym_l @ pool_l(z)): layers of the same
grid are summed into one matrix, and M is never formed densely.
"""

from dataclasses import dataclass
from typing import Dict, List, Sequence

import numpy as np
import torch

from ..features.attention import AttentionSample


@dataclass
class PooledOperator:
    """``blocks[g]`` is the (g*g, g*g) symmetric matrix of all layers on a g x g grid, already weighted."""

    grid: int
    blocks: Dict[int, np.ndarray]

    @property
    def size(self) -> int:
        return self.grid * self.grid

    def matmat(self, z: np.ndarray) -> np.ndarray:
        """Apply M to the columns of ``z`` (N x k, N = grid^2)."""
        z = np.asarray(z, dtype=np.float64).reshape(self.size, -1)
        k = z.shape[1]
        out = np.zeros_like(z)
        for g, block in self.blocks.items():
            s = self.grid // g
            maps = z.T.reshape(k, g, s, g, s)
            pooled = maps.mean(axis=(2, 4)).reshape(k, g * g)
            y = (block @ pooled.T).T.reshape(k, g, 1, g, 1)
            out += np.broadcast_to(y, (k, g, s, g, s)).reshape(k, self.size).T
        return out

    def dense(self) -> np.ndarray:
        """M as a dense matrix (for tests and small grids)."""
        return self.matmat(np.eye(self.size))


def pooled_operator(samples: Sequence[AttentionSample]) -> PooledOperator:
    """Average heads and samples per layer, symmetrise, and group layers by grid (mean over layers)."""
    if not samples:
        raise ValueError("No attention samples to build the operator from.")
    names = list(samples[0])
    per_layer: List[torch.Tensor] = []
    grids: List[int] = []
    for name in names:
        mean = sum(sample[name].probs.double().mean(dim=0) for sample in samples) / len(samples)
        per_layer.append((mean + mean.T) / 2)
        grids.append(samples[0][name].grid)
    finest = max(grids)
    blocks: Dict[int, np.ndarray] = {}
    for g, matrix in zip(grids, per_layer):
        if finest % g:
            raise ValueError(f"Attention grid {g} does not divide the finest grid {finest}.")
        blocks[g] = blocks.get(g, 0) + matrix.numpy() / len(names)
    return PooledOperator(grid=finest, blocks=blocks)
