"""``cryodiffseg train``: a membrane U-Net and a particle picker from pseudo-label folders."""

from pathlib import Path

from .options import POSITIVE, Option, Range, add_options, apply_options

TARGETS = ("membranes", "particles")

MEMBRANE_OPTIONS = [
    Option("--iterations", "iterations", "membrane U-Net: optimiser steps (the paper: 30000 on a GPU)", range=POSITIVE),
    Option("--batch-size", "batch_size", "membrane U-Net: crops per step", range=POSITIVE),
    Option("--crop-size", "crop_size", "membrane U-Net: crop side, px (multiple of 16)", range=POSITIVE),
    Option("--learning-rate", "learning_rate", "membrane U-Net: SGD learning rate", range=POSITIVE),
    Option("--validation-fraction", "validation_fraction", "membrane U-Net: share of labelled slices held out", range=Range(0, 1, high_inclusive=False)),
    Option("--max-rotation", "max_rotation_deg", "membrane U-Net: random rotation within +-this, degrees", range=Range(0, 180)),
]
PICKER_OPTIONS = [
    Option("--picker-iterations", "iterations", "picker: optimiser steps", range=POSITIVE),
    Option("--picker-batch-size", "batch_size", "picker: patches per step", range=POSITIVE),
    Option("--particle-diameter-nm", "particle_diameter_nm", "picker: expected particle diameter, nm", range=POSITIVE),
]
SHARED_OPTIONS = [
    Option("--seed", "seed", "random seed"),
    Option("--device", "device", "auto, cpu, cuda or cuda:N"),
    Option("--resume", "resume", "continue each training from its saved state when settings and data match; --no-resume starts over"),
]


def model_part(model_dir, target: str) -> Path:
    """A `train` output folder or one of its parts: both are accepted wherever a model is asked for."""
    model_dir = Path(model_dir)
    part = model_dir / target
    return part if part.is_dir() else model_dir


def register(commands) -> None:
    from ..picking import PickerTrainingConfig
    from ..segmentation import MembraneTrainingConfig

    parser = commands.add_parser(
        "train",
        help="train the membrane U-Net and the particle picker on pseudo-labels",
        description="Train on the labelled slices of one or more `cryodiffseg pseudolabel` folders (unlabelled "
        "slices are ignored). Writes OUT/membranes/ and OUT/particles/; training resumes where it stopped.",
    )
    parser.add_argument("pseudolabels", nargs="+", help="pseudo-label folders")
    parser.add_argument("--out", required=True, help="model folder")
    parser.add_argument("--targets", default=",".join(TARGETS), help="what to train: membranes, particles or both")
    add_options(parser, MEMBRANE_OPTIONS, MembraneTrainingConfig())
    add_options(parser, PICKER_OPTIONS, PickerTrainingConfig())
    add_options(parser, SHARED_OPTIONS, MembraneTrainingConfig())
    parser.set_defaults(run=run)


def run(args) -> None:
    from ..errors import CryoDiffSegError
    from ..picking import PickerTrainingConfig, train_picker
    from ..picking.train import check_picker_inputs
    from ..records import write_json
    from ..segmentation import MembraneTrainingConfig, train_membrane_model

    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not targets or set(targets) - set(TARGETS):
        raise CryoDiffSegError(f"--targets takes {' and/or '.join(TARGETS)}, got '{args.targets}'.")
    out = Path(args.out)
    membrane_config = apply_options(args, SHARED_OPTIONS, apply_options(args, MEMBRANE_OPTIONS, MembraneTrainingConfig()))
    picker_config = apply_options(args, SHARED_OPTIONS, apply_options(args, PICKER_OPTIONS, PickerTrainingConfig()))
    if "particles" in targets:  # before the membrane U-Net trains for minutes or hours
        check_picker_inputs(args.pseudolabels, picker_config)
    trained = {}
    if "membranes" in targets:
        trained["membranes"] = str(train_membrane_model(args.pseudolabels, out / "membranes", membrane_config))
    if "particles" in targets:
        train_picker(args.pseudolabels, out / "particles", picker_config)
        trained["particles"] = str(out / "particles")
    write_json(out / "training.json", {"pseudolabels": [str(Path(p).resolve()) for p in args.pseudolabels], "models": trained})
    for target, path in trained.items():
        print(f"{target}: {path}")
