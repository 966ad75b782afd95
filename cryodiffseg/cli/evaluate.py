"""``cryodiffseg evaluate``: compare a mask or a point file against ground truth."""

from pathlib import Path

from .options import POSITIVE, number


def register(commands) -> None:
    parser = commands.add_parser(
        "evaluate",
        help="score a mask or picks against ground truth",
        description="Membrane masks: Dice, IoU, precision, recall (volumetric) and the per-slice mean Dice "
        "(a slice empty in both counts 1). Points: precision, recall and F1 with one-to-one matching within "
        "--radius voxels. Prints a table; --json writes every figure.",
    )
    parser.add_argument("--mask", help="predicted mask MRC")
    parser.add_argument("--truth-mask", help="ground-truth mask MRC (same shape)")
    parser.add_argument("--slices", help="restrict mask scores to these z ranges (slab syntax, e.g. 30-40)")
    parser.add_argument("--points", help="predicted points CSV (x, y, z voxels)")
    parser.add_argument("--truth-points", help="ground-truth points CSV")
    parser.add_argument("--radius", type=number(float, POSITIVE), help="matching radius for points, voxels")
    parser.add_argument("--json", help="write all results to this JSON file ('-': print them)")
    parser.set_defaults(run=run)


def run(args) -> None:
    from ..errors import CryoDiffSegError
    from ..evaluation import evaluate_mask, evaluate_points, format_table
    from ..records import write_json

    if not (args.mask or args.points):
        raise CryoDiffSegError("Give --mask with --truth-mask, and/or --points with --truth-points and --radius.")
    if args.json and args.json != "-" and Path(args.json).is_dir():  # before the scoring, not after it
        raise CryoDiffSegError(f"--json names a folder, not a file: {args.json}")
    results = {}
    if args.mask:
        if not args.truth_mask:
            raise CryoDiffSegError("--mask needs --truth-mask.")
        slices = None
        if args.slices:
            from ..evaluation import read_mask
            from ..pseudolabel.slabs import parse_slabs, slab_slices

            slices = slab_slices(parse_slabs(args.slices, read_mask(args.truth_mask)[0].shape[0]))
        results["mask"] = evaluate_mask(args.mask, args.truth_mask, slices)
        print("membrane mask\n" + format_table(results["mask"]))
    if args.points:
        if not args.truth_points or args.radius is None or args.radius <= 0:
            raise CryoDiffSegError("--points needs --truth-points and a positive --radius (voxels).")
        results["points"] = evaluate_points(args.points, args.truth_points, args.radius)
        print("particles\n" + format_table(results["points"]))
    if args.json == "-":
        import json

        from ..records import to_jsonable

        print(json.dumps(to_jsonable(results), indent=2))
    elif args.json:
        write_json(args.json, results)
