import numpy as np
import pytest

from cryodiffseg.errors import CryoDiffSegError
from cryodiffseg.pseudolabel.preprocess import PreprocessConfig, preprocess_slice, stretch_to_uint8
from cryodiffseg.pseudolabel.slabs import parse_slabs, slab_slices
from cryodiffseg.pseudolabel.tiling import plan_tiles


def test_slab_syntax_inclusive_half_open_single_and_merge():
    assert parse_slabs("201-298", 400) == [(201, 298)]
    assert len(slab_slices(parse_slabs("201-298", 400))) == 98
    assert parse_slabs("201:298", 400) == [(201, 297)]
    assert parse_slabs("5, 10-12, 11-14, 30", 40) == [(5, 5), (10, 14), (30, 30)]


@pytest.mark.parametrize("spec, message", [("", "empty"), ("a-b", "Cannot read"), ("10-5", "reversed"), ("30-40", "has 40 slices"), ("0-39,40", "has 40 slices")])
def test_bad_slabs(spec, message):
    with pytest.raises(CryoDiffSegError, match=message):
        parse_slabs(spec, 40)


def test_preprocess_stretches_and_smooths():
    image = np.zeros((32, 32))
    image[16, 16] = 100.0
    out = preprocess_slice(image)
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
    assert (out > 0).sum() > 1  # the single bright pixel is spread by the Gaussian
    assert stretch_to_uint8(np.full((4, 4), 7.0)).max() == 0
    assert preprocess_slice(np.random.default_rng(0).random((64, 64)), PreprocessConfig(clahe=True)).shape == (64, 64)


@pytest.mark.parametrize("shape", [(100, 130), (64, 64), (40, 50), (250, 97)])
def test_native_tiles_cover_and_stitch_back_exactly(shape):
    image = np.arange(np.prod(shape), dtype=np.int64).reshape(shape)
    layout = plan_tiles(shape, 64, "native", overlap=8)
    tiles = layout.extract(image)
    assert tiles.shape[1:] == (64, 64)
    np.testing.assert_array_equal(layout.stitch(tiles), image)  # small slices: reflection padding is dropped
    owned = np.zeros(shape, dtype=int)
    for t in layout.tiles:
        owned[t.own_y[0] : t.own_y[1], t.own_x[0] : t.own_x[1]] += 1
    assert (owned == 1).all()


def test_native_tiles_overlap_and_map_points():
    layout = plan_tiles((100, 200), 64, "native", overlap=16)
    assert len(layout.tiles) == 3 * 5  # (100 + 16) and (200 + 16) px covered by 64-px tiles, 16 px overlap
    second = layout.tiles[1]
    pts = layout.to_slice(1, np.array([[0.0, 0.0], [63.0, 10.0]]), owned_only=False)
    np.testing.assert_allclose(pts, [[second.x0, second.y0], [second.x0 + 63, second.y0 + 10]])


def test_quadrisect_matches_reference_geometry():
    shape = (928, 960)
    layout = plan_tiles(shape, 512, "quadrisect")
    assert len(layout.tiles) == 4
    image = np.zeros(shape, dtype=np.uint8)
    image[464:, 480:] = 200  # bottom-right quarter
    tiles = layout.extract(image)
    assert tiles[3].mean() > 190 and tiles[0].max() == 0
    assert (layout.stitch(tiles) != image).mean() < 0.005  # resampled twice: only edge pixels move
    # tile (1, 1) pixel (0, 0) is slice (480, 464); pixel 256 is a quarter of the slice further
    np.testing.assert_allclose(layout.to_slice(3, np.array([[0, 0], [256, 256]])), [[480, 464], [720, 696]])


def test_bad_tiling():
    with pytest.raises(CryoDiffSegError, match="Unknown tiling"):
        plan_tiles((64, 64), 32, "spiral")
    with pytest.raises(CryoDiffSegError, match="overlap"):
        plan_tiles((64, 64), 32, "native", overlap=32)


@pytest.mark.parametrize("shape", [(100, 130), (300, 260), (40, 50)])
def test_native_tiles_keep_used_pixels_away_from_tile_edges(shape):
    layout = plan_tiles(shape, 64, "native", overlap=16)
    for tile in layout.tiles:
        (ya, yb), (xa, xb) = tile.own_y, tile.own_x
        if shape[0] + 16 <= 64:  # one tile holds the whole slice and its margin
            continue
        assert ya - tile.y0 >= 8 and tile.y0 + 64 - yb >= 8
        assert xa - tile.x0 >= 8 and tile.x0 + 64 - xb >= 8


def test_the_jpeg_round_trip_gives_the_tiles_the_reference_reads_from_its_files(tmp_path):
    """The reference writes each tile with cv2.imwrite (3-channel .jpg, quality 95) and opens it with PIL as
    greyscale: our in-memory round trip must give those very pixels, and they differ from the input."""
    import cv2
    from PIL import Image

    from cryodiffseg.pseudolabel.tiling import jpeg_round_trip

    rng = np.random.default_rng(0)
    tiles = np.clip(rng.normal(128, 30, (2, 64, 64)), 0, 255).astype(np.uint8)
    tiles[1] = cv2.GaussianBlur(tiles[1], (0, 0), 2)  # a smooth tile as well as a noisy one
    expected = []
    for i, tile in enumerate(tiles):
        path = tmp_path / f"tile_{i}.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(tile, cv2.COLOR_GRAY2BGR))  # OpenCV's default JPEG quality: 95
        expected.append(np.asarray(Image.open(path).convert("L")))
    trip = jpeg_round_trip(tiles, 95)
    np.testing.assert_array_equal(trip, np.stack(expected))
    changed = trip.astype(int) - tiles
    assert 0.05 < np.mean(changed != 0) < 1 and np.abs(changed[1]).max() <= 4  # lossy, but close on a smooth tile
    assert trip.dtype == np.uint8 and trip.shape == tiles.shape
