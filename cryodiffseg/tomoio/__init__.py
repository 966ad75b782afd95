"""Tomogram input and atomic output."""

from .atomic import atomic_path, write_text
from .mrc import write_mrc
from .tomogram import Tomogram, read_tomogram

__all__ = ["Tomogram", "read_tomogram", "write_mrc", "atomic_path", "write_text"]
