"""Figures show slices as MRC viewers do (x right, y up: row 0 at the bottom), with the mask and the points on
the structure they mark. An asymmetric phantom tells a flipped panel from a right one."""

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402

from cryodiffseg.pseudolabel.qc import slab_figure  # noqa: E402

SHAPE_YX = (40, 60)
SQUARE = (slice(2, 10), slice(3, 13))  # rows (y) 2-9, columns (x) 3-12: the lower left in an MRC viewer
CENTRE_XY = (7.5, 5.5)


def _phantom():
    image = np.zeros(SHAPE_YX, np.float32)
    image[SQUARE] = 1.0
    return image, (image > 0).astype(np.int8)


def _screen(ax, x, y):
    """Where data point (x, y) lands, as fractions of the panel (0, 0: its lower left)."""
    box = ax.get_window_extent()
    px, py = ax.transData.transform((x, y))
    return (px - box.x0) / box.width, (py - box.y0) / box.height


def test_the_qc_figure_draws_every_slice_y_up_with_its_mask_and_points_on_it():
    image, mask = _phantom()
    fig = slab_figure("phantom", image, image.copy(), mask, np.array([CENTRE_XY]), image.copy())
    fig.canvas.draw()
    assert len(fig.axes) == 5  # slice, canvas, sheet evidence, mask over slice, points over slice
    for ax in fig.axes:
        for shown in ax.images:
            # each drawn array is the data as stored (no copy flipped on the way), mapped y up
            assert shown.get_array().shape == SHAPE_YX
            assert shown.origin == "lower"
            assert tuple(shown.get_extent()) == (-0.5, SHAPE_YX[1] - 0.5, -0.5, SHAPE_YX[0] - 0.5)
        # the square, at small x and y in the data, sits in the panel's lower left
        x, y = _screen(ax, *CENTRE_XY)
        assert x < 0.25 and y < 0.25, (ax.get_title(), x, y)
    overlay, points = fig.axes[3], fig.axes[4]
    slice_image, mask_image = overlay.images
    shown_mask = np.ma.getdata(mask_image.get_array()) * ~np.ma.getmaskarray(mask_image.get_array())
    assert np.array_equal(shown_mask > 0, np.asarray(slice_image.get_array()) > 0)  # the mask covers the square
    (scatter,) = points.collections
    assert np.allclose(points.transData.transform(scatter.get_offsets())[0],
                       points.transData.transform(CENTRE_XY))  # the point on the square's centre
