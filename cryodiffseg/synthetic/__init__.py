"""Synthetic cellular tomograms with ground truth (tests, demo, benchmark)."""

from .phantom import CLASS_NAMES, Phantom, PhantomConfig, generate_phantom, scaled_config, write_phantom

__all__ = ["CLASS_NAMES", "Phantom", "PhantomConfig", "generate_phantom", "scaled_config", "write_phantom"]
