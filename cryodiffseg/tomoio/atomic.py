"""Atomic output: write under a temporary name in the target folder, rename when complete.

A failure part-way leaves no file under the final name, so a half-written output can never be
mistaken for a result (by a user, by a re-run that skips finished work, or by Scipion).
"""

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(final: os.PathLike, suffix: str = ""):
    """Yield a temporary path next to ``final``; rename it to ``final`` only if the block succeeds.

    ``suffix`` keeps the extension for writers that pick the format from the name (e.g. ".png").
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix or final.suffix, dir=final.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual permissions
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(final: os.PathLike, text: str) -> Path:
    with atomic_path(final) as tmp:
        tmp.write_text(text)
    return Path(final)
