"""``cryodiffseg demo``: the main job on generated tomograms, scored against their ground truth."""

from .options import number


def register(commands) -> None:
    parser = commands.add_parser(
        "demo",
        help="run the whole chain on generated tomograms and print the scores",
        description="Generate tomograms with ground truth, pseudo-label a slab of the first, train the membrane "
        "U-Net and the picker on the pseudo-labels, segment and pick every tomogram, and score masks (Dice, "
        "IoU) and picks (precision, recall, F1) against the ground truth. Writes everything under --out.",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--backbone", default="compact", help="diffusion backbone (default: the shipped compact model)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=number(int), default=1, help="seed of the generated tomograms")
    parser.set_defaults(run=run)


def run(args) -> None:
    from ..workflow import DemoConfig, format_scores, run_demo

    report = run_demo(args.out, DemoConfig(backbone=args.backbone, device=args.device, seed=args.seed))
    print(format_scores(report))
    print(f"\nQC figures: {', '.join(report['qc'])}")
    print(f"Stage times (s): {report['timings_s']}")
    print(f"All results: {args.out}/demo.json")
