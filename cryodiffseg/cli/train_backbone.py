"""``cryodiffseg train-backbone``: train the compact diffusion backbone on synthetic and user tomograms."""

from .options import FRACTION, POSITIVE, Option, Range, add_options, apply_options

OPTIONS = [
    Option("--iterations", "iterations", "optimiser steps", range=POSITIVE),
    Option("--batch-size", "batch_size", "crops per step", range=POSITIVE),
    Option("--learning-rate", "learning_rate", "AdamW learning rate", range=POSITIVE),
    Option("--ema-decay", "ema_decay", "decay of the exported moving-average weights", range=Range(0, 1, high_inclusive=False)),
    Option("--checkpoint-every", "checkpoint_every", "iterations between resumable checkpoints", range=POSITIVE),
    Option("--seed", "seed", "seed of data generation, crops and noise"),
    Option("--device", "device", "auto, cpu, cuda or cuda:N"),
    Option("--tomogram-voxel-size", "tomogram_voxel_size", "voxel size of the --tomogram files, Angstrom, overriding headers", type=float, range=POSITIVE),
    Option("--user-fraction", "user_fraction", "share of crops taken from --tomogram files", range=FRACTION),
    Option("--synthetic-volumes", "synthetic.volumes", "generated training tomograms"),
]


def register(commands) -> None:
    from ..compact.train import BackboneTrainingConfig

    parser = commands.add_parser(
        "train-backbone",
        help="train the compact diffusion backbone",
        description="Train a compact pixel-space diffusion UNet (self-attention at 32x32 and 16x16 tokens of a "
        "128-px tile) with the noise-prediction objective on generated tomograms of varied SNR, defocus, "
        "thickness and crowding, plus any tomograms given (adaptation to a facility's data). Resumes from "
        "OUT/checkpoint when present. Use the result with --backbone OUT.",
    )
    parser.add_argument("--out", required=True, help="output model folder")
    parser.add_argument("--tomogram", action="append", default=[], help="a tomogram to add to the training data (repeatable)")
    parser.add_argument("--no-resume", dest="resume", action="store_false", help="start over even if OUT/checkpoint exists")
    add_options(parser, OPTIONS, BackboneTrainingConfig())
    parser.set_defaults(run=run)


def run(args) -> None:
    from ..compact.train import BackboneTrainingConfig, train_backbone

    config = apply_options(args, OPTIONS, BackboneTrainingConfig(tomograms=list(args.tomogram)))
    out = train_backbone(args.out, config, resume=args.resume)
    print(f"backbone: {out} (use --backbone {out})")
