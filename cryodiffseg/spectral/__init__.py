"""Spectral eigen-maps of the captured attention: the `direct` and `paper` solvers."""

import numpy as np

from .direct import DirectSolverConfig, direct_eigenmaps
from .operator import PooledOperator, pooled_operator
from .paper import PaperSolverConfig, paper_eigenmaps


def subspace_agreement(maps_a: np.ndarray, maps_b: np.ndarray) -> float:
    """Mean cosine of the principal angles between the spans of two sets of maps (1 = same subspace)."""
    qa, _ = np.linalg.qr(np.asarray(maps_a, dtype=np.float64).reshape(len(maps_a), -1).T)
    qb, _ = np.linalg.qr(np.asarray(maps_b, dtype=np.float64).reshape(len(maps_b), -1).T)
    cosines = np.linalg.svd(qa.T @ qb, compute_uv=False)
    return float(np.clip(cosines, 0.0, 1.0).mean())


__all__ = [
    "DirectSolverConfig",
    "PaperSolverConfig",
    "PooledOperator",
    "direct_eigenmaps",
    "paper_eigenmaps",
    "pooled_operator",
    "subspace_agreement",
]
