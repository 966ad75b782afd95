"""``cryodiffseg pick``: particle coordinates (CSV and RELION STAR) in a whole tomogram."""

from .options import FRACTION, POSITIVE, Option, add_options, apply_options

OPTIONS = [
    Option("--voxel-size", "voxel_size", "voxel size in Angstrom, overriding the header", type=float, range=POSITIVE),
    Option("--threshold", "threshold", "minimum heatmap score (0-1) of a particle centre; automatic: the threshold calibrated when the picker was trained (0.5 for older pickers)", type=float, range=FRACTION),
    Option("--min-distance-nm", "min_distance_nm", "closest two picks may be, nm (default: the trained particle radius)", type=float, range=POSITIVE),
    Option("--max-points", "max_points", "keep only this many best-scoring particles", type=int, range=POSITIVE),
    Option("--batch-size", "batch_size", "slices per network call", range=POSITIVE),
    Option("--chunk-slices", "chunk_slices", "z slices scored per chunk", range=POSITIVE),
    Option("--device", "device", "auto, cpu, cuda or cuda:N"),
    Option("--heatmap", "save_heatmap", "also write the heatmap MRC"),
    Option("--average", "average", "average the subvolumes at the picks and at as many random positions: a figure and figures of merit (centre contrast, half-set FSC)"),
    Option("--box", "box", "side of those subvolumes, voxels (default: 1.6 particle diameters)", type=int, range=POSITIVE),
]


def register(commands) -> None:
    from ..picking import PickingConfig

    parser = commands.add_parser(
        "pick",
        help="pick particles in a whole tomogram",
        description="Run a trained picker over a tomogram; peaks of its heatmap after non-maximum suppression "
        "are written as <name>_particles.csv (x, y, z voxels, score) and <name>_particles.star.",
    )
    parser.add_argument("tomogram", help="MRC/REC or TIFF tomogram")
    parser.add_argument("--model", required=True, help="a model folder from `cryodiffseg train` (or its particles/ subfolder)")
    parser.add_argument("--out", required=True, help="output folder")
    add_options(parser, OPTIONS, PickingConfig())
    parser.set_defaults(run=run)


def run(args) -> None:
    from ..picking import PickingConfig, pick_particles
    from .train import model_part

    config = apply_options(args, OPTIONS, PickingConfig())
    paths = pick_particles(args.tomogram, model_part(args.model, "particles"), args.out, config)
    for name, path in paths.items():
        print(f"{name}: {path}")
