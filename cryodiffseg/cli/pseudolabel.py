"""``cryodiffseg pseudolabel``: membrane pseudo-mask and macromolecule pseudo-points for the slabs of a tomogram."""

from .options import ANY, FRACTION, POSITIVE, Option, Range, add_options, apply_options

SIMILARITY = Range(-1, 1)  # SSIM

OPTIONS = [
    Option("--voxel-size", "voxel_size", "voxel size in Angstrom, overriding the header", type=float, range=POSITIVE),
    Option("--particles", "particles", "pseudo-points from dark blobs of the particle's size, the attention canvas's round instances (the paper), or the blobs on round canvas instances", choices=("blobs", "attention", "both")),
    Option("--particle-diameter-nm", "blobs.diameter_nm", "particles 'blobs'/'both': diameter of the particle to find, nm", range=POSITIVE),
    Option("--blob-threshold", "blobs.threshold", "particles 'blobs'/'both': blob measure threshold, in noise levels", range=POSITIVE),
    Option("--calibration-nm", "blobs.calibration_nm", "particles 'blobs'/'both': held-out slices on each side of the slab whose blob centres calibrate the picker's threshold, nm"),
    Option("--membranes", "membranes", "membrane pseudo-mask from the image's sheet evidence, the attention canvas (the paper), or the sheet evidence weighted by the canvas", choices=("sheets", "attention", "both")),
    Option("--backbone", "backbone.source", "diffusion backbone: 'auto' (the paper's Stable Diffusion v1.4 when its weights are in the local Hugging Face cache, otherwise 'compact'), 'compact' (shipped with cryodiffseg: offline and fast on a CPU), a Hugging Face hub id, a diffusers folder or a checkpoint file"),
    Option("--backbone-config", "backbone.config", "for a single checkpoint file offline: a diffusers folder with the component configs"),
    Option("--device", "backbone.device", "auto, cpu, cuda or cuda:N"),
    Option("--dtype", "backbone.dtype", "model precision", choices=("auto", "float32", "float16", "bfloat16")),
    Option("--solver", "solver", "eigen-map solver", choices=("direct", "paper")),
    Option("--tiling", "tiling", "native: tiles at the tomogram's pixel size; quadrisect: the reference's 2x2 of a 1024-px resize", choices=("native", "quadrisect")),
    Option("--tile-size", "tile_size", "model input tile side in px (default: the backbone's)", type=int, range=POSITIVE),
    Option("--tile-overlap", "tile_overlap", "overlap of native tiles in px; half of it is kept clear of tile edges (default: 1/4 of a tile)", type=int),
    Option("--tile-jpeg-quality", "tile_jpeg_quality", "model-input tiles through a JPEG round trip of this quality, as the reference's tile files (0: lossless)", type=int, range=Range(0, 100)),
    Option("--clahe", "preprocess.clahe", "CLAHE before smoothing"),
    Option("--smoothing-sigma", "preprocess.smoothing_sigma", "Gaussian smoothing of each slice, px"),
    Option("--num-samples", "features.num_samples", "noisy passes per tile; attention is averaged over them", range=POSITIVE),
    Option("--max-timestep", "features.max_timestep", "largest noise timestep (default: floor(68 / voxel size in nm))", type=int),
    Option("--batch-size", "features.batch_size", "tiles per forward pass", range=POSITIVE),
    Option("--seed", "features.seed", "random seed for VAE sampling and noise"),
    Option("--num-maps", "direct.num_maps", "eigen-maps per tile", range=POSITIVE),
    Option("--direct-reuse", "direct.reuse_probability", "direct solver: layer weights of the paper solver's objective when it reuses the mid/up attention with this probability (0: all layers equal; the paper: 0.9)", range=FRACTION),
    Option("--paper-iterations", "paper.iterations", "paper solver: gradient iterations", range=POSITIVE),
    Option("--paper-reuse", "paper.reuse_probability", "paper solver: probability of reusing buffered mid/up attention", range=FRACTION),
    Option("--canvas-maps", "canvas.n_maps", "eigen-maps considered for the canvas", range=POSITIVE),
    Option("--max-base-contours", "canvas.max_base_contours", "canvas base: most Otsu contours", range=POSITIVE),
    Option("--max-merged-contours", "canvas.max_merged_contours", "canvas merge: most Otsu contours", range=POSITIVE),
    Option("--min-ssim", "canvas.min_ssim", "canvas merge: SSIM with the base above this", range=SIMILARITY),
    Option("--z-agreement", "zconsistency.neighbour_agreement", "z-correction: neighbours agree above this SSIM", range=SIMILARITY),
    Option("--z-outlier", "zconsistency.outlier_similarity", "z-correction: a slice is an outlier below this SSIM to both", range=SIMILARITY),
    Option("--threshold-block", "masks.threshold_block", "adaptive threshold block size, px (odd)", range=POSITIVE),
    Option("--threshold-offset", "masks.threshold_offset", "adaptive threshold: darker than the local mean minus this", range=ANY),
    Option("--splitter", "masks.splitter", "instance split: cellpose when its weights are here (auto), or forced", choices=("auto", "cellpose", "watershed")),
    Option("--cellpose-model", "masks.cellpose_model", "cellpose model name or weights file"),
    Option("--diameter", "masks.instance_diameter", "expected instance diameter, px", range=POSITIVE),
    Option("--flow-threshold", "masks.flow_threshold", "cellpose flow threshold"),
    Option("--cellprob-threshold", "masks.cellprob_threshold", "cellpose cell-probability threshold", range=ANY),
    Option("--circularity", "masks.min_circularity", "instances at least this round are macromolecules", range=FRACTION),
    Option("--sheet-scale-nm", "sheets.scale_nm", "sheet evidence: Gaussian scale of the Hessian, nm (about a bilayer's thickness)", range=POSITIVE),
    Option("--sheet-low", "sheets.low", "sheet evidence: low hysteresis threshold in noise levels; sheets are followed through z above it", range=POSITIVE),
    Option("--sheet-high", "sheets.high", "sheet evidence: high hysteresis threshold in noise levels", range=POSITIVE),
    Option("--sheet-depth-nm", "sheets.min_depth_nm", "sheet evidence: a kept sheet continues through this much of the section along z, nm"),
    Option("--sheet-length-nm", "sheets.min_length_nm", "sheet evidence: a kept piece of a slice is at least this long, nm"),
    Option("--sheet-lumen-nm", "sheets.min_lumen_nm", "sheet evidence: a piece closed around a lighter lumen of at least this radius is kept whatever its depth (small vesicles), nm; 0: off"),
    Option("--attention-weight", "sheets.attention_weight", "membranes 'both': the canvas darkness scales the sheet evidence by 1 +- this", range=FRACTION),
    Option("--min-area-nm", "points.min_area_nm_px", "points: smallest instance area is this / voxel size in nm, px"),
    Option("--membrane-distance", "points.min_membrane_distance", "points: farther than this from membrane, px"),
    Option("--crowding-distance", "points.crowding_distance", "points: both of a pair closer than this are dropped, px"),
    Option("--dedup-nm", "points.dedup_radius_nm", "points: 3-D duplicates within this many nm are merged"),
    Option("--dedup", "points.dedup_mode", "points: keep each particle's most central point, or the reference's first one", choices=("centre", "first")),
]


def register(commands) -> None:
    from ..pseudolabel.pipeline import PseudoLabelConfig
    from ..pseudolabel.presets import PRESETS

    parser = commands.add_parser(
        "pseudolabel",
        help="pseudo-label the slabs of a tomogram",
        description="Pseudo-label selected slabs of a tomogram: a membrane mask MRC (labelled slices listed in "
        "pseudolabels.json), particle pseudo-points CSV, held-out calibration points for the picker, QC figures, "
        "and (when the attention canvas is used) cached eigen-maps so that re-running with other threshold "
        "settings recomputes no attention.",
    )
    parser.add_argument("tomogram", help="MRC/REC or TIFF tomogram")
    parser.add_argument("--slabs", required=True, help="z ranges: A-B inclusive, A:B half-open, A; comma-separated (0-based); "
                        "'auto': 2 slabs of 2 slices chosen inside the sample (see select-slabs), recorded in pseudolabels.json")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--preset", choices=tuple(PRESETS), default="default",
                        help="named settings: default (the measured best) or paper (the published method: attention "
                        "canvas, Stable Diffusion v1.4 in float32, the paper solver, quadrisect tiling with JPEG tiles, CellPose, greedy "
                        "de-duplication); options given with it still win (default: default)")
    add_options(parser, OPTIONS, PseudoLabelConfig(slabs=""))
    parser.set_defaults(run=run)


def run(args) -> None:
    from ..pseudolabel.pipeline import PseudoLabelConfig, run_pseudolabel
    from ..pseudolabel.presets import apply_preset

    config = apply_options(args, OPTIONS, apply_preset(PseudoLabelConfig(slabs=args.slabs), args.preset))
    result = run_pseudolabel(args.tomogram, args.out, config)
    print(f"membrane pseudo-mask: {result.mask} ({len(result.labelled_slices)} labelled slices)")
    print(f"pseudo-points: {result.points} ({result.num_points} points)")
    for path in result.qc:
        print(f"QC: {path}")
