"""The ``cryodiffseg`` command: one sub-command per pipeline stage, each a thin layer over plain functions.

A user-facing problem (CryoDiffSegError, or an operating-system error such as a full disk or a read-only
folder) prints one line and exits with status 2; nothing is left half-written because every output is
renamed into place only when complete. ``--error-file`` also writes that line to a file, for callers that keep
the log apart from the reason (the Scipion plugin shows it as the run's error).
"""

import argparse
import logging
import os
import sys
from pathlib import Path

from .. import __version__
from ..errors import CryoDiffSegError, library_reason
from . import bench, demo, evaluate, pick, pseudolabel, segment, select_slabs, synth, train, train_backbone

COMMANDS = (demo, select_slabs, pseudolabel, train, segment, pick, evaluate, train_backbone, synth, bench)
log = logging.getLogger("cryodiffseg")


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose refusals are one line, like every other error (its usage block is in --help)."""

    error_file = None  # --error-file, read from the arguments before parsing them (set by main for every parser)

    def error(self, message):
        line = f"{self.prog}: error: {message} (see {self.prog} --help)"
        write_error_file(self.error_file, line)
        self.exit(2, line + "\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cryodiffseg",
        description="Unsupervised segmentation of cellular cryo-electron tomograms: pseudo-labels from "
        "diffusion-model self-attention, then models trained on them.",
    )
    parser.add_argument("--version", action="version", version=f"cryodiffseg {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debugging detail")
    parser.add_argument("--error-file", metavar="FILE",
                        help="on failure, also write the one-line reason to FILE (nothing is written on success)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.register(commands)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    _Parser.error_file = _error_file_argument(sys.argv[1:] if argv is None else argv)  # sub-command parsers too
    args = parser.parse_args(argv)
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    logging.getLogger("cryodiffseg").setLevel(level)
    if not args.command:
        parser.print_help()
        return 2
    try:
        if getattr(args, "out", None):
            require_writable_folder(args.out)
        args.run(args)
    except CryoDiffSegError as exc:
        return _fail(args, f"cryodiffseg {args.command}: error: {exc}", 2)
    except OSError as exc:  # the machine's problem, not ours: which file, and why
        where = f": {exc.filename}" if exc.filename else ""
        return _fail(args, f"cryodiffseg {args.command}: error: {exc.strerror or exc}{where}", 2)
    except KeyboardInterrupt:
        return _fail(args, f"cryodiffseg {args.command}: interrupted", 130)
    except Exception as exc:  # a bug: the traceback goes to the log, its gist to the error file
        write_error_file(args.error_file, f"cryodiffseg {args.command}: internal error ({type(exc).__name__}: "
                                          f"{library_reason(exc)}); the log holds the traceback")
        raise
    return 0


def _fail(args, line: str, status: int) -> int:
    print(line, file=sys.stderr)
    write_error_file(args.error_file, line)
    return status


def write_error_file(path, line: str) -> None:
    """Best effort: the reason is already on stderr, and a folder that refuses it must not hide it."""
    if not path:
        return
    try:
        with open(path, "w") as handle:
            handle.write(line + "\n")
    except OSError:
        pass


def _error_file_argument(argv) -> str | None:
    """--error-file from raw arguments, so that refusals of the other arguments reach it too."""
    for index, word in enumerate(argv):
        if word == "--error-file" and index + 1 < len(argv):
            return argv[index + 1]
        if word.startswith("--error-file="):
            return word.split("=", 1)[1]
    return None


def require_writable_folder(out: str) -> None:
    """Refuse an --out that cannot become a writable folder before any work (and without creating it)."""
    path = Path(out).absolute()
    if path.exists() and not path.is_dir():
        raise CryoDiffSegError(f"--out names a file, not a folder: {path}")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise CryoDiffSegError(f"--out cannot be created under a file: {existing}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CryoDiffSegError(f"--out is not writable (permissions or a read-only file system): {existing}")
