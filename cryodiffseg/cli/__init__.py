"""The ``cryodiffseg`` command: one sub-command per pipeline stage, each a thin layer over plain functions.

A user-facing problem (CryoDiffSegError, or an operating-system error such as a full disk or a read-only
folder) prints one line and exits with status 2; nothing is left half-written because every output is
renamed into place only when complete.
"""

import argparse
import logging
import os
import sys
from pathlib import Path

from .. import __version__
from ..errors import CryoDiffSegError
from . import bench, demo, evaluate, pick, pseudolabel, segment, select_slabs, synth, train, train_backbone

COMMANDS = (demo, select_slabs, pseudolabel, train, segment, pick, evaluate, train_backbone, synth, bench)
log = logging.getLogger("cryodiffseg")


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose refusals are one line, like every other error (its usage block is in --help)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cryodiffseg",
        description="Unsupervised segmentation of cellular cryo-electron tomograms: pseudo-labels from "
        "diffusion-model self-attention, then models trained on them.",
    )
    parser.add_argument("--version", action="version", version=f"cryodiffseg {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debugging detail")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.register(commands)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
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
        print(f"cryodiffseg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the machine's problem, not ours: which file, and why
        where = f": {exc.filename}" if exc.filename else ""
        print(f"cryodiffseg {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cryodiffseg {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


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
