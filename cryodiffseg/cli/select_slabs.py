"""``cryodiffseg select-slabs``: choose the slabs to pseudo-label automatically, inside the sample and covering
the data set's content, and print them as ``pseudolabel --slabs`` reads them."""

from .options import POSITIVE, Option, Range, add_options, apply_options, number

BELOW_HALF = Range(0, 0.5, high_inclusive=False)
UNIT = Range(0, 1, high_inclusive=False)

OPTIONS = [
    Option("--seed", "seed", "picks among near-equally typical first slabs and breaks ties; the same seed gives the same slabs"),
    Option("--min-content", "min_content", "a usable slice's structure contrast reaches this fraction of its tomogram's 90th percentile", range=UNIT),
    Option("--max-flat", "max_flat", "slices with more than this fraction of flat (padded) pixels are never chosen", range=Range(0, 1, low_inclusive=False)),
    Option("--edge-fraction", "edge_fraction", "this fraction of the depth (at least one slice) at each end of a tomogram is never chosen", range=BELOW_HALF),
    Option("--sheet-scale-nm", "sheet_scale_nm", "bilayer scale of the structure contrast and ridge response, nm", range=POSITIVE),
    Option("--particle-diameter-nm", "particle_diameter_nm", "particle scale of the blob response, nm", range=POSITIVE),
    Option("--position-weight", "position_weight", "distance between slabs: feature distance + this x their z distance within the sample (0-2)"),
    Option("--max-side-px", "max_side_px", "slices are binned to at most this many pixels per side for the features", range=Range(16)),
]


def register(commands) -> None:
    from ..pseudolabel.slab_selection import SlabSelectionConfig

    parser = commands.add_parser(
        "select-slabs",
        help="choose the slabs to pseudo-label automatically",
        description="Score every slice of the tomograms with cheap features (intensity statistics, structure "
        "contrast, ridge and blob responses at physical scales), never choose slices outside the sample (empty, "
        "constant, padded, low contrast, reconstruction edges), and choose slabs that cover the data set's content "
        "(k-medoids over candidate slabs: each slab typical of a share of the data set; seeded). Prints one 'TOMO: SPEC' line per tomogram with slabs, SPEC as "
        "'pseudolabel --slabs' reads it; with --out writes slab_selection.json (slabs, per-slice scores, why), "
        "slabs.txt ('NAME: SPEC' lines, as the Scipion slab field reads them) and a per-slice score plot per tomogram.",
    )
    parser.add_argument("tomograms", nargs="+", metavar="TOMO", help="MRC/REC or TIFF tomograms")
    defaults = SlabSelectionConfig()
    default_budget = f"{defaults.slabs}x{defaults.slices_per_slab}"
    parser.add_argument("--budget", default=default_budget,
                        help=f"NxL: N slabs of L slices over the whole data set; P%%: at most P%% of all slices in slabs "
                        f"of {defaults.slices_per_slab}; P%%xL: the same in slabs of L (default: {default_budget})")
    parser.add_argument("--voxel-size", type=number(float, POSITIVE), default=None,
                        help="voxel size in Angstrom for every tomogram, overriding the headers")
    parser.add_argument("--out", default=None, help="folder for the JSON record, slabs.txt and QC plots (default: print only)")
    add_options(parser, OPTIONS, SlabSelectionConfig())
    parser.set_defaults(run=run)


def run(args) -> None:
    import logging
    import time
    from pathlib import Path

    from .. import __version__
    from ..errors import CryoDiffSegError
    from ..records import write_json
    from ..pseudolabel.slab_selection import (parse_budget, select_slabs, selection_record, slab_count,
                                             write_selection_figure)
    from ..tomoio import read_tomogram, write_text

    start = time.monotonic()
    config = apply_options(args, OPTIONS, parse_budget(args.budget))
    config.validate()
    # Every input is checked before the first slice is read: headers only (values are checked slice by slice).
    tomograms = [read_tomogram(path, voxel_size=args.voxel_size, check_values=False) for path in args.tomograms]
    names = [t.name for t in tomograms]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise CryoDiffSegError(f"Two tomograms share the name '{repeated[0]}': their outputs would overwrite each other.")
    _, length = slab_count(config, sum(t.shape[0] for t in tomograms))
    if length > max(t.shape[0] for t in tomograms):
        raise CryoDiffSegError(f"Slabs of {length} slices do not fit in any tomogram (the deepest has {max(t.shape[0] for t in tomograms)}).")

    selection = select_slabs(tomograms, config)
    for i, path in enumerate(args.tomograms):
        spec = selection.spec(i)
        if spec:
            print(f"{path}: {spec}")
    if args.out is None:
        return
    out = Path(args.out)
    record = {"cryodiffseg_version": __version__, "budget_spec": args.budget,
              **selection_record(selection, tomograms, config)}
    qc = []
    for i, tomogram in enumerate(tomograms):
        figure = out / "qc" / f"{tomogram.name}_slab_selection.png"
        write_selection_figure(figure, selection.scores[i], selection.slabs_of(i), config)
        record["tomograms"][i]["qc"] = str(figure.relative_to(out))
        qc.append(figure)
    lines = [f"{t.name}: {selection.spec(i)}" for i, t in enumerate(tomograms) if selection.spec(i)]
    text_path = write_text(out / "slabs.txt", "\n".join(lines) + "\n")
    record["elapsed_s"] = round(time.monotonic() - start, 2)
    json_path = write_json(out / "slab_selection.json", record)
    logging.getLogger("cryodiffseg").info("Wrote %s, %s and %d QC plot(s) in %s", json_path.name, text_path.name, len(qc), out)
    print(f"record: {json_path}")
    print(f"slabs: {text_path}")
    for path in qc:
        print(f"QC: {path}")
