"""Open a tomogram in napari with masks, probability maps and points laid over it.

Run by the plugin's viewer with a Python that has napari and mrcfile (e.g. the tomo plugin's napari
environment); it imports nothing from Scipion. Points are a CSV of x,y,z in 0-based voxels. Slices are shown
y up where napari can (0.6 on), as MRC viewers, Scipion and the QC figures show them. --check prints the layers
as JSON instead of opening a window, for tests.
"""

import argparse
import csv
import json
import os


def readVolume(path):
    import mrcfile
    import numpy as np
    with mrcfile.open(path, permissive=True) as mrc:
        return np.asarray(mrc.data)


def readPoints(path):
    with open(path, newline="") as handle:
        return [(float(row["z"]), float(row["y"]), float(row["x"])) for row in csv.DictReader(handle)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("tomogram")
    parser.add_argument("--mask", action="append", default=[], help="a binary or label volume (repeatable)")
    parser.add_argument("--probability", action="append", default=[], help="a probability map (repeatable)")
    parser.add_argument("--points", action="append", default=[], help="a CSV of x,y,z voxels (repeatable)")
    parser.add_argument("--point-size", type=float, default=10.0, help="point diameter in voxels")
    parser.add_argument("--title", default="CryoDiffSeg")
    parser.add_argument("--check", action="store_true",
                        help="print the layers (type, name, shape, world position of their content) and the slice "
                             "orientation as JSON, and exit without showing a window")
    args = parser.parse_args(argv)

    import napari
    import numpy as np

    viewer = napari.Viewer(title=args.title, show=not args.check)
    tomogram = readVolume(args.tomogram)
    low, high = np.percentile(tomogram, [1, 99])
    viewer.add_image(tomogram, name=_name(args.tomogram), contrast_limits=(float(low), float(high)))
    for path in args.probability:
        viewer.add_image(readVolume(path), name=_name(path), colormap="magma", blending="additive", opacity=0.5)
    for path in args.mask:
        viewer.add_labels(readVolume(path).astype(np.int32), name=_name(path), opacity=0.4)
    outline = {outlineKeyword(napari.__version__): "cyan"}
    for path in args.points:
        viewer.add_points(np.array(readPoints(path)).reshape(-1, 3), name=_name(path), size=args.point_size,
                          face_color="transparent", out_of_slice_display=True, **outline)
    viewer.dims.set_point(0, tomogram.shape[0] // 2)
    camera = _camera(viewer)
    if hasattr(camera, "orientation2d"):  # napari >= 0.6; earlier ones draw row 0 at the top
        camera.orientation2d = ("up", "right")
    if args.check:
        print(json.dumps(describeLayers(viewer)))
        viewer.close()
        return
    napari.run()


def describeLayers(viewer):
    """Each layer's type, name, data shape and the world (z, y, x) centroid of its content (non-zero voxels,
    or points), with the camera's 2D orientation: what a test needs to see the layers overlay."""
    import numpy as np

    layers = []
    for layer in viewer.layers:
        data = np.asarray(layer.data)
        if layer.__class__.__name__ == "Points":
            content = data
        else:
            content = np.argwhere(data != 0).astype(float)
        centroid = [float(v) for v in layer.data_to_world(content.mean(axis=0))] if len(content) else None
        layers.append({"type": layer.__class__.__name__.lower(), "name": layer.name, "shape": list(data.shape),
                       "world_centroid": centroid})
    orientation = getattr(_camera(viewer), "orientation2d", None)
    return {"layers": layers,
            "orientation2d": None if orientation is None else [getattr(o, "value", o) for o in orientation]}


def _camera(viewer):
    """napari 0.9 moved the camera to viewer.scene (viewer.camera still works, with a warning)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


def outlineKeyword(version):
    """napari 0.5 renamed the points' outline colour from edge_color to border_color (0.4 has only the first)."""
    major, minor = (int("".join(c for c in part if c.isdigit()) or 0) for part in version.split(".")[:2])
    return "border_color" if (major, minor) >= (0, 5) else "edge_color"


def _name(path):
    return os.path.splitext(os.path.basename(path))[0]


if __name__ == "__main__":
    main()
