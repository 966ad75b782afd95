"""Tomogram input and atomic output."""

from .atomic import atomic_path, temporary_path, write_text
from .mrc import new_mrc_map, write_mrc
from .tomogram import Tomogram, read_tomogram, release_pages, require_voxel_size

__all__ = ["Tomogram", "read_tomogram", "write_mrc", "new_mrc_map", "atomic_path", "temporary_path", "write_text", "require_voxel_size", "release_pages"]
