"""The ``cryodiffseg`` command: one sub-command per pipeline stage, each a thin layer over plain functions.

A user-facing problem (CryoDiffSegError) prints one line and exits with status 2; nothing is left
half-written because every output is renamed into place only when complete.
"""

import argparse
import logging
import sys

from .. import __version__
from ..errors import CryoDiffSegError
from . import bench, demo, evaluate, pick, pseudolabel, segment, synth, train, train_backbone

COMMANDS = (demo, pseudolabel, train, segment, pick, evaluate, train_backbone, synth, bench)
log = logging.getLogger("cryodiffseg")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
        args.run(args)
    except CryoDiffSegError as exc:
        print(f"cryodiffseg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cryodiffseg {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0
