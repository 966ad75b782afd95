"""``cryodiffseg synth``: a simulated cellular tomogram with ground truth, for demos and tests."""

from .options import POSITIVE, number


def register(commands) -> None:
    parser = commands.add_parser(
        "synth",
        help="generate a synthetic tomogram with ground truth",
        description="Simulate membranes (bilayer vesicles), filaments and ribosome-like particles (counts scaled "
        "with the slice area), image them "
        "through a +-60 degree tilt series with noise and back-project. Writes tomogram.mrc, membrane.mrc, "
        "labels.mrc, particles.csv and classes.csv.",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--shape", type=number(int, POSITIVE), nargs=3, metavar=("Z", "Y", "X"), default=None, help="volume shape")
    parser.add_argument("--voxel-size", type=number(float, POSITIVE), default=None, help="Angstrom per voxel")
    parser.add_argument("--snr", type=number(float, POSITIVE), default=None, help="signal-to-noise ratio of the projections")
    parser.add_argument("--seed", type=number(int), default=0)
    parser.set_defaults(run=run)


def run(args) -> None:
    from ..errors import CryoDiffSegError
    from ..synthetic import PhantomConfig, generate_phantom, scaled_config, write_phantom

    shape = tuple(args.shape) if args.shape else PhantomConfig().shape
    if min(shape) < 16:
        raise CryoDiffSegError("--shape needs at least 16 voxels per axis.")
    overrides = {"seed": args.seed}
    if args.voxel_size is not None:
        if args.voxel_size <= 0:
            raise CryoDiffSegError("--voxel-size must be positive (Angstrom).")
        overrides["voxel_size_A"] = args.voxel_size
    if args.snr is not None:
        if args.snr <= 0:
            raise CryoDiffSegError("--snr must be positive.")
        overrides["snr"] = args.snr
    config = scaled_config(shape, **overrides)
    paths = write_phantom(generate_phantom(config), args.out)
    for name, path in paths.items():
        print(f"{name}: {path}")
