"""The synthetic tomogram generator: determinism, ground truth consistency, imaging physics, output files."""

import csv

import mrcfile
import numpy as np
import pytest
from scipy import ndimage

from cryodiffseg.synthetic import CLASS_NAMES, PhantomConfig, generate_phantom, write_phantom
from cryodiffseg.synthetic.phantom import MEMBRANE, RIBOSOME

SMALL = dict(shape=(40, 96, 96), n_vesicles=1, n_actin=1, n_ribosomes=2, n_small_proteins=6)
# Only one small protein in an empty volume, imaged without noise or CTF: the point spread of the tilt geometry.
LONE_PROTEIN = dict(shape=(48, 48, 48), membrane_sheet=False, n_vesicles=0, n_microtubules=0, n_actin=0,
                    n_ribosomes=0, n_small_proteins=1, snr=None, defocus_um=0)


@pytest.fixture(scope="module")
def phantom():
    return generate_phantom(PhantomConfig(seed=3))


def test_same_seed_same_phantom_other_seed_differs():
    a = generate_phantom(PhantomConfig(seed=1, **SMALL))
    b = generate_phantom(PhantomConfig(seed=1, **SMALL))
    c = generate_phantom(PhantomConfig(seed=2, **SMALL))
    for name in ("tomogram", "labels", "density", "particles"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.labels, c.labels)
    assert not np.allclose(a.tomogram, c.tomogram)


def test_shapes_and_dtypes(phantom):
    shape = PhantomConfig().shape
    assert phantom.tomogram.shape == phantom.membrane.shape == phantom.labels.shape == phantom.density.shape == shape
    assert phantom.tomogram.dtype == np.float32 and phantom.density.dtype == np.float32
    assert phantom.labels.dtype == np.int8 and phantom.membrane.dtype == np.uint8
    assert abs(float(phantom.tomogram.mean())) < 1e-3 and abs(float(phantom.tomogram.std()) - 1) < 1e-3
    assert phantom.particles.ndim == 2 and phantom.particles.shape[1] == 3 and len(phantom.particles) >= 1
    assert phantom.voxel_size == 10.0
    assert set(np.unique(phantom.labels)) <= set(range(len(CLASS_NAMES)))


def test_membrane_mask_is_the_membrane_class_and_plausible(phantom):
    np.testing.assert_array_equal(phantom.membrane, phantom.labels == MEMBRANE)
    assert 0.005 < phantom.membrane.mean() < 0.2
    # Every class is drawn in the default scene.
    assert set(np.unique(phantom.labels)) == set(range(len(CLASS_NAMES)))


def test_dense_matter_is_dark():
    p = generate_phantom(PhantomConfig(seed=2, snr=20.0, **SMALL))
    membrane = p.membrane.astype(bool)
    background = p.labels == 0
    assert p.tomogram[membrane].mean() < p.tomogram[background].mean() - 0.5
    assert p.tomogram[p.labels == RIBOSOME].mean() < p.tomogram[background].mean()


def test_particles_inside_apart_and_off_membranes(phantom):
    cfg = phantom.config
    diameter = cfg.voxels(cfg.ribosome_diameter_nm)
    xyz = phantom.particles
    size_xyz = np.array(cfg.shape[::-1])
    assert np.all(xyz >= 0) and np.all(xyz <= size_xyz - 1)
    zyx = np.rint(xyz[:, ::-1]).astype(int)
    assert np.all(phantom.labels[tuple(zyx.T)] == RIBOSOME)
    gaps = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1) + np.eye(len(xyz)) * 1e9
    assert gaps.min() >= diameter
    to_membrane = ndimage.distance_transform_edt(phantom.membrane == 0)
    assert to_membrane[tuple(zyx.T)].min() > diameter / 2


def _z_over_x_spread(volume: np.ndarray) -> float:
    """Ratio of the z and x standard deviations of the bright blob around the maximum (above 10% of it)."""
    v = volume - np.median(volume)
    regions, _ = ndimage.label(v > 0.1 * v.max())
    w = np.where(regions == regions.ravel()[np.argmax(v)], v, 0)
    spread = []
    for axis in (0, 2):
        g = np.indices(v.shape)[axis]
        centre = (w * g).sum() / w.sum()
        spread.append(np.sqrt((w * (g - centre) ** 2).sum() / w.sum()))
    return spread[0] / spread[1]


def test_missing_wedge_elongates_along_z():
    limited = generate_phantom(PhantomConfig(seed=0, **LONE_PROTEIN))
    full = generate_phantom(PhantomConfig(seed=0, tilt_range_deg=(-90.0, 87.0), **LONE_PROTEIN))
    np.testing.assert_array_equal(limited.density, full.density)
    truth = _z_over_x_spread(limited.density)
    assert _z_over_x_spread(-limited.tomogram) > 1.3 * truth
    # A complete tilt range gives back the shape: the elongation comes from the wedge, not the projector.
    assert _z_over_x_spread(-full.tomogram) == pytest.approx(truth, rel=0.15)


def test_write_phantom(tmp_path, phantom):
    paths = write_phantom(phantom, tmp_path / "out")
    assert set(paths) == {"tomogram", "membrane", "labels", "particles", "classes"}
    with mrcfile.open(paths["tomogram"], permissive=False) as mrc:
        assert mrc.data.dtype == np.float32
        np.testing.assert_array_equal(mrc.data, phantom.tomogram)
        assert mrc.voxel_size.x == pytest.approx(10.0)
    for name in ("membrane", "labels"):
        with mrcfile.open(paths[name]) as mrc:
            np.testing.assert_array_equal(mrc.data, getattr(phantom, name))
            assert mrc.voxel_size.z == pytest.approx(10.0)
    with open(paths["particles"]) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["x", "y", "z"] and len(rows) == len(phantom.particles)
    np.testing.assert_allclose([[float(r[k]) for k in "xyz"] for r in rows], phantom.particles, atol=0.01)
    with open(paths["classes"]) as f:
        classes = list(csv.DictReader(f))
    assert [(int(r["label"]), r["name"]) for r in classes] == list(enumerate(CLASS_NAMES))
