"""Attention with a known spectrum, to check both eigen-map solvers where the 12-map subspace is determined.

A solver can only be held to a subspace the operator determines: eigen-maps 2-12 must carry a real share
of it, not the few percent they carry in a nearly rank-one attention. Two kinds of row-stochastic
attention give that by construction. ``local``: every token attends to a Gaussian neighbourhood, so the
eigenvalues start near 1 and decay slowly and the maps are smooth, low-frequency patterns (the 12th and
13th form a symmetric pair, so one of the 12 directions is shared with the 13th). ``regions``: tokens
attend to their own region of a 12-region partition, so eigenvalues 1-12 lie near 1, the 13th far below,
and the region indicators span the 12 maps.
"""

from typing import List

import numpy as np
import torch

from ..features.attention import AttentionSample, LayerAttention


def local_attention(grid: int, width: float, heads: int = 2, noise: float = 0.3, seed: int = 0) -> torch.Tensor:
    """(heads, N, N) attention to a Gaussian neighbourhood of ``width`` tokens, with log-space noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:grid, 0:grid]
    positions = np.stack([yy.ravel(), xx.ravel()], 1).astype(float)
    squared = ((positions[:, None] - positions[None]) ** 2).sum(-1)
    return _row_softmax([-squared / (2 * width**2) + noise * rng.standard_normal(squared.shape) for _ in range(heads)])


def region_attention(grid: int, regions: int = 12, heads: int = 2, noise: float = 0.5, seed: int = 0, base: int = 16) -> torch.Tensor:
    """(heads, N, N) attention that prefers tokens of the same region of a fixed partition of a ``base`` grid.

    Coarser grids subsample the same partition, so layers of different resolutions see the same regions.
    """
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).uniform(0, base, (regions, 2))
    yy, xx = np.mgrid[0:base, 0:base]
    labels = np.argmin((yy[..., None] - centres[:, 0]) ** 2 + (xx[..., None] - centres[:, 1]) ** 2, -1)
    labels = labels[:: base // grid, :: base // grid].ravel()
    same = (labels[:, None] == labels[None, :]).astype(float)
    return _row_softmax([6 * same + noise * rng.standard_normal(same.shape) for _ in range(heads)])


def reference_samples(kind: str, grid: int, count: int = 2) -> List[AttentionSample]:
    """``count`` noise samples of a three-layer UNet (two layers on ``grid``, one on ``grid / 2``)."""
    if kind == "local":
        make = lambda g, seed: local_attention(g, width=2.0 * g / 32, seed=seed)  # noqa: E731
    elif kind == "regions":
        make = lambda g, seed: region_attention(g, seed=seed, base=grid)  # noqa: E731
    else:
        raise ValueError(f"Unknown reference attention {kind!r}: local or regions.")
    layers = [("down_blocks.0.attn1", grid), ("up_blocks.0.attn1", grid), ("up_blocks.1.attn1", grid // 2)]
    return [
        {name: LayerAttention(name, make(g, 3 * k + i)) for i, (name, g) in enumerate(layers)}
        for k in range(count)
    ]


def _row_softmax(logits: List[np.ndarray]) -> torch.Tensor:
    stacked = np.array(logits)
    weights = np.exp(stacked - stacked.max(-1, keepdims=True))
    return torch.tensor(weights / weights.sum(-1, keepdims=True), dtype=torch.float32)
