"""The pooled, layer- and head-averaged attention operator whose leading eigenvectors are the eigen-maps.

M = sum over layers l of w_l s_l^2 A_l^T ((P_l + P_l^T) / 2) A_l (P_l averaged over heads and noise samples),
where A_l average-pools a map on the finest attention grid down to layer l's grid (s_l x s_l blocks). The
weights w_l are equal by default. The reference's objective reuses the mid- and up-path attention with
probability p (``paper.py``), so a down-path layer is in its loss only in fresh draws: w = (1 - p) / L for
those and (1 - p) / L + p / L_reused for the others; ``reuse_probability`` = p gives its weights. Since
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


def layer_weights(samples: Sequence[AttentionSample], reuse_probability: float = 0.0) -> Dict[str, float]:
    """Weight of each layer in the operator (they sum to 1); see the module's docstring."""
    names = list(samples[0])
    reused = [name for name in names if not samples[0][name].in_down_path]
    if not reused:
        reuse_probability = 0.0
    fresh = (1.0 - reuse_probability) / len(names)
    return {name: fresh + (reuse_probability / len(reused) if name in reused else 0.0) for name in names}


def pooled_operator(samples: Sequence[AttentionSample], reuse_probability: float = 0.0) -> PooledOperator:
    """Average heads and samples per layer, symmetrise, and group layers by grid (weighted, see ``layer_weights``)."""
    if not samples:
        raise ValueError("No attention samples to build the operator from.")
    names = list(samples[0])
    weights = layer_weights(samples, reuse_probability)
    per_layer: List[torch.Tensor] = []
    grids: List[int] = []
    for name in names:
        mean = sum(sample[name].probs.double().mean(dim=0) for sample in samples) / len(samples)
        per_layer.append((mean + mean.T) / 2)
        grids.append(samples[0][name].grid)
    finest = max(grids)
    blocks: Dict[int, np.ndarray] = {}
    for name, g, matrix in zip(names, grids, per_layer):
        if finest % g:
            raise ValueError(f"Attention grid {g} does not divide the finest grid {finest}.")
        blocks[g] = blocks.get(g, 0) + matrix.numpy() * weights[name]
    return PooledOperator(grid=finest, blocks=blocks)
