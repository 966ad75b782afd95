import mrcfile
import numpy as np
import pytest
import tifffile

from cryodiffseg.errors import CryoDiffSegError
from cryodiffseg.tomoio import read_tomogram, write_mrc


def _volume(shape=(6, 20, 24), seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_mrc_round_trip_keeps_geometry(tmp_path):
    data = _volume()
    path = write_mrc(tmp_path / "t.mrc", data, voxel_size=13.48, origin=(10.0, 20.0, 30.0))
    tomo = read_tomogram(path)
    assert tomo.shape == (6, 20, 24)
    assert tomo.voxel_size == pytest.approx(13.48, rel=1e-5)
    assert tomo.origin == pytest.approx((10.0, 20.0, 30.0))
    assert isinstance(tomo.data, np.memmap)  # large files are never loaded whole
    np.testing.assert_array_equal(np.asarray(tomo.data), data)


def test_voxel_size_override_wins(tmp_path):
    path = write_mrc(tmp_path / "t.mrc", _volume(), voxel_size=13.48)
    assert read_tomogram(path, voxel_size=7.0).voxel_size == 7.0


def test_tiff_stack_needs_voxel_size(tmp_path):
    data = (np.random.default_rng(1).random((5, 16, 16)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "t.tif", data)
    with pytest.raises(CryoDiffSegError, match="no voxel size"):
        read_tomogram(tmp_path / "t.tif")
    tomo = read_tomogram(tmp_path / "t.tif", voxel_size=25.0)
    assert tomo.shape == (5, 16, 16) and tomo.voxel_size == 25.0


def _raw_mrc(path, data, voxel):
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = voxel
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b"not an mrc file at all" * 10), "unreadable or truncated"),
        (lambda p: p.write_bytes(_raw_mrc(p, _volume(), 10.0).read_bytes()[:-100]), "unreadable or truncated"),
        (lambda p: _raw_mrc(p, _volume((20, 24))[None][0], 10.0), "3-D"),
        (lambda p: _raw_mrc(p, np.where(_volume() > 2, np.nan, _volume()).astype(np.float32), 10.0), "NaN or Inf"),
        (lambda p: _raw_mrc(p, np.full((4, 8, 8), np.inf, np.float32), 10.0), "NaN or Inf"),
        (lambda p: _raw_mrc(p, np.full((4, 8, 8), 3.0, np.float32), 10.0), "constant"),
        (lambda p: _raw_mrc(p, _volume(), 0.0), "voxel size 0"),
        (lambda p: _raw_mrc(p, _volume(), 1.348), "implausible voxel size of 1.348 A .*nm"),
        (lambda p: _raw_mrc(p, _volume(), 500.0), "implausible voxel size"),
    ],
    ids=["garbage", "truncated", "2d", "nan", "inf", "constant", "voxel0", "voxel-nm", "voxel-huge"],
)
def test_bad_inputs_raise_one_clear_error(tmp_path, make, message):
    path = tmp_path / "bad.mrc"
    make(path)
    with pytest.raises(CryoDiffSegError, match=message):
        read_tomogram(path)


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(CryoDiffSegError, match="not found"):
        read_tomogram(tmp_path / "nope.mrc")
    (tmp_path / "t.png").write_bytes(b"x")
    with pytest.raises(CryoDiffSegError, match="Unsupported"):
        read_tomogram(tmp_path / "t.png")
    path = write_mrc(tmp_path / "t.mrc", _volume(), voxel_size=10.0)
    for absurd in (0, 1e9, float("nan")):
        with pytest.raises(CryoDiffSegError, match="must lie between 0.5 and 1000 A"):
            read_tomogram(path, voxel_size=absurd)


def test_failed_write_leaves_no_file(tmp_path):
    target = tmp_path / "out.mrc"
    with pytest.raises(Exception):
        write_mrc(target, np.zeros((2, 2, 2), dtype=np.int64), voxel_size=10.0)  # int64 is no MRC mode
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_outputs_get_the_usual_file_permissions(tmp_path):
    import os
    import stat

    path = write_mrc(tmp_path / "t.mrc", _volume(), voxel_size=10.0)
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
