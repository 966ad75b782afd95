"""Atomic output: write under a temporary name in the target folder, rename when complete.

A failure part-way leaves no file under the final name, so a half-written output can never be
mistaken for a result (by a user, by a re-run that skips finished work, or by Scipion).

A temporary file is named after its output (``.NAME.XXXXXXXX`` plus the suffix) and holds an exclusive
lock while its run lives. A killed run cannot remove its own (a memory-mapped tomogram-sized one keeps a
disk full), so the next run writing the same output removes the ones nobody holds: the lock dies with
its process, and a concurrent run's temporary files stay locked and untouched.
"""

import contextlib
import fcntl
import os
import re
import tempfile
from pathlib import Path


@contextlib.contextmanager
def temporary_path(final: os.PathLike, suffix: str = ""):
    """Yield a locked temporary path next to ``final``, named after it; removed on exit.

    Stale temporary files of ``final`` left by killed runs are removed first.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    suffix = suffix or final.suffix
    remove_stale_temporaries(final, suffix)
    fd, tmp = tempfile.mkstemp(prefix=_prefix(final), suffix=suffix, dir=final.parent)
    tmp = Path(tmp)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a fresh file: nobody else can hold it
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)
        os.close(fd)


@contextlib.contextmanager
def atomic_path(final: os.PathLike, suffix: str = ""):
    """Yield a temporary path next to ``final``; rename it to ``final`` only if the block succeeds.

    ``suffix`` keeps the extension for writers that pick the format from the name (e.g. ".png").
    """
    with temporary_path(final, suffix) as tmp:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual permissions
        os.replace(tmp, final)


def remove_stale_temporaries(final: os.PathLike, suffix: str = "") -> None:
    """Remove the temporary files of ``final`` (our naming only) that no living run holds."""
    final = Path(final)
    suffix = suffix or final.suffix
    # mkstemp's random part: 8 characters of [a-z0-9_].
    pattern = re.compile(re.escape(_prefix(final)) + r"[a-z0-9_]{8}" + re.escape(suffix))
    with contextlib.suppress(OSError):
        for candidate in final.parent.iterdir():
            if pattern.fullmatch(candidate.name) and candidate.is_file() and not candidate.is_symlink():
                _remove_if_unheld(candidate)


def _remove_if_unheld(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held: a run writing it now
        return
    else:
        path.unlink(missing_ok=True)
    finally:
        os.close(fd)


def _prefix(final: Path) -> str:
    return f".{final.name}."


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(final: os.PathLike, text: str) -> Path:
    with atomic_path(final) as tmp:
        tmp.write_text(text)
    return Path(final)
