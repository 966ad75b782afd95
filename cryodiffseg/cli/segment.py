"""``cryodiffseg segment``: membrane probability map and mask of a whole tomogram with a trained model."""

from .options import FRACTION, POSITIVE, Option, add_options, apply_options

OPTIONS = [
    Option("--voxel-size", "voxel_size", "voxel size in Angstrom, overriding the header", type=float, range=POSITIVE),
    Option("--threshold", "threshold", "probability above which a voxel is membrane", range=FRACTION),
    Option("--min-size", "min_component_voxels", "remove 3-D connected pieces smaller than this many voxels"),
    Option("--batch-size", "batch_size", "tiles per forward pass (raise on a GPU)", range=POSITIVE),
    Option("--tile-size", "tile_size", "larger slices are cut into overlapping tiles of this side, px", range=POSITIVE),
    Option("--chunk-slices", "chunk_slices", "slices read and written at a time (default: ~32 MiB)", type=int, range=POSITIVE),
    Option("--device", "device", "auto, cpu, cuda or cuda:N"),
    Option("--probability", "output_probability", "write the probability map"),
    Option("--pieces", "output_pieces", "write the mask's 3-D connected pieces as points, one group per piece "
           "(<name>_membrane_pieces.csv: piece, x, y, z voxels)"),
    Option("--piece-spacing", "piece_spacing", "about how far apart the points of a piece are, voxels", range=POSITIVE),
]


def register(commands) -> None:
    from ..segmentation import SegmentationConfig

    parser = commands.add_parser(
        "segment",
        help="segment membranes in a whole tomogram",
        description="Run a trained membrane model slice by slice over a tomogram (memory-mapped, in chunks) and "
        "write <name>_membrane_probability.mrc and <name>_membrane_mask.mrc with the tomogram's geometry (with "
        "--pieces also <name>_membrane_pieces.csv).",
    )
    parser.add_argument("tomogram", help="MRC/REC or TIFF tomogram")
    parser.add_argument("--model", required=True, help="a model folder from `cryodiffseg train` (or its membranes/ subfolder)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--axes", default="z", help="planes to predict on and average: z (default) or zyx")
    add_options(parser, OPTIONS, SegmentationConfig())
    parser.set_defaults(run=run)


def run(args) -> None:
    from ..errors import CryoDiffSegError
    from ..segmentation import SegmentationConfig, segment_tomogram
    from .train import model_part

    if set(args.axes) - set("zyx") or not args.axes:
        raise CryoDiffSegError(f"--axes takes letters of zyx, got '{args.axes}'.")
    config = apply_options(args, OPTIONS, SegmentationConfig(axes=tuple(args.axes)))
    paths = segment_tomogram(args.tomogram, model_part(args.model, "membranes"), args.out, config)
    for name, path in paths.items():
        print(f"{name}: {path}")
