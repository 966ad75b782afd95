"""Synthetic cellular tomograms with ground truth, for tests, the demo and the benchmark.

A scene of lipid-bilayer vesicles, an optional cell membrane, microtubules, actin, ribosome-like
particles and small proteins is drawn as a density map, then imaged the way a microscope does it:
a single-axis tilt series (tilt axis y) with a phase-flipped CTF and Gaussian noise, reconstructed
by weighted back-projection. The limited tilt range leaves the missing wedge, which smears objects
along z as in real data, so a method that works here has at least met the artefact that matters most.

Arrays are numpy order (z, y, x); lengths in the configuration are nm unless named otherwise.
"""

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import scipy.fft
from scipy import ndimage, sparse
from scipy.spatial import cKDTree

from ..tomoio import write_mrc, write_text

BACKGROUND, MEMBRANE, MICROTUBULE, ACTIN, RIBOSOME, SMALL_PROTEIN = range(6)
CLASS_NAMES = ("background", "membrane", "microtubule", "actin", "ribosome", "small_protein")

# Relative densities (cytosol = 0, the same as outside the volume, so the slab edges cast no streaks).
_DENSITY = {MEMBRANE: 1.0, MICROTUBULE: 0.8, ACTIN: 0.8, RIBOSOME: 1.0, SMALL_PROTEIN: 0.7}
_LUMEN_DENSITY = 0.12  # vesicle lumens and the compartment beyond the cell membrane: slightly denser than cytosol
_MICROTUBULE_DIAMETERS_NM = (25.0, 17.0)  # outer, inner
_ACTIN_DIAMETER_NM = 7.0
_CLEARANCE_NM = 1.5  # minimum gap between objects placed by rejection sampling
_ELECTRON_WAVELENGTH_A = 0.0197  # 300 kV
_AMPLITUDE_CONTRAST = 0.07
_MAX_TRIES = 200


@dataclass
class PhantomConfig:
    """What to draw and how to image it; the defaults give a small (48, 128, 128) volume for CI.

    Counts are absolute, so scale them with the area for larger volumes. ``snr`` is the signal-to-noise
    variance ratio of each projection (None: noiseless); ``defocus_um`` 0 switches the CTF off.
    """

    shape: Tuple[int, int, int] = (48, 128, 128)
    voxel_size_A: float = 10.0
    seed: int = 0
    membrane_sheet: bool = True
    n_vesicles: int = 2
    vesicle_radius_nm: Tuple[float, float] = (10.0, 20.0)
    vesicle_max_aspect: float = 1.5
    leaflet_separation_nm: float = 2.5
    leaflet_width_nm: float = 1.5
    n_microtubules: int = 1
    n_actin: int = 2
    n_ribosomes: int = 4
    ribosome_diameter_nm: float = 25.0
    n_small_proteins: int = 20
    small_protein_diameter_nm: float = 10.0
    tilt_range_deg: Tuple[float, float] = (-60.0, 60.0)
    tilt_step_deg: float = 3.0
    snr: Optional[float] = 0.5
    defocus_um: float = 3.0

    def __post_init__(self):
        self.shape = tuple(int(s) for s in self.shape)
        if len(self.shape) != 3 or min(self.shape) < 8:
            raise ValueError(f"shape must be (z, y, x) with every size >= 8, got {self.shape}")
        if self.voxel_size_A <= 0 or self.tilt_step_deg <= 0:
            raise ValueError("voxel_size_A and tilt_step_deg must be positive")
        if self.snr is not None and self.snr <= 0:
            raise ValueError("snr must be positive, or None for no noise")

    def voxels(self, nm: float) -> float:
        """A length in nm as voxels."""
        return nm * 10.0 / self.voxel_size_A


@dataclass
class Phantom:
    """A synthetic tomogram and its ground truth; ``particles`` are ribosome centres (x, y, z) in voxels."""

    tomogram: np.ndarray
    membrane: np.ndarray
    labels: np.ndarray
    particles: np.ndarray
    density: np.ndarray
    voxel_size: float
    config: PhantomConfig = field(repr=False)


def scaled_config(shape: Tuple[int, int, int], crowding: float = 1.0, **overrides) -> PhantomConfig:
    """A PhantomConfig for ``shape`` with object counts scaled from the 128 x 128 defaults by slice area.

    ``crowding`` multiplies the particle counts; other fields can be overridden by name.
    """
    base = PhantomConfig()
    area = shape[1] * shape[2] / (base.shape[1] * base.shape[2])
    counts = dict(
        n_vesicles=max(1, round(base.n_vesicles * area)),
        n_microtubules=max(1, round(base.n_microtubules * area / 2)),
        n_actin=max(1, round(base.n_actin * area)),
        n_ribosomes=max(1, round(base.n_ribosomes * area * crowding)),
        n_small_proteins=max(1, round(base.n_small_proteins * area * crowding)),
    )
    counts.update(overrides)
    return dataclasses.replace(base, shape=tuple(shape), **counts)


def generate_phantom(config: Optional[PhantomConfig] = None) -> Phantom:
    """Draw the scene, image it, and return the tomogram with its ground truth (deterministic per seed)."""
    config = config or PhantomConfig()
    rng = np.random.default_rng(config.seed)
    scene = _Scene(config)
    sheet = _draw_sheet(scene, rng) if config.membrane_sheet else None
    _draw_filaments(scene, rng, sheet)
    _draw_vesicles(scene, rng)
    ribosomes = _place_particles(scene, rng, config.n_ribosomes, config.voxels(config.ribosome_diameter_nm),
                                 RIBOSOME, _ribosome_lobes)
    _place_particles(scene, rng, config.n_small_proteins, config.voxels(config.small_protein_diameter_nm),
                     SMALL_PROTEIN, _protein_lobes)
    tomogram = _image(scene.density, config, rng)
    return Phantom(
        tomogram=tomogram,
        membrane=(scene.labels == MEMBRANE).astype(np.uint8),
        labels=scene.labels,
        particles=np.array(ribosomes, dtype=np.float64).reshape(-1, 3)[:, ::-1].copy(),
        density=scene.density,
        voxel_size=float(config.voxel_size_A),
        config=config,
    )


def write_phantom(phantom: Phantom, out_dir: os.PathLike) -> Dict[str, Path]:
    """Write the tomogram, masks and particle list (each atomically) and return their paths by name."""
    out_dir = Path(out_dir)
    vs = phantom.voxel_size
    paths = {
        "tomogram": write_mrc(out_dir / "tomogram.mrc", phantom.tomogram.astype(np.float32), vs),
        "membrane": write_mrc(out_dir / "membrane.mrc", phantom.membrane.astype(np.int8), vs),
        "labels": write_mrc(out_dir / "labels.mrc", phantom.labels.astype(np.int8), vs),
    }
    rows = "".join(f"{x:.2f},{y:.2f},{z:.2f}\n" for x, y, z in phantom.particles)
    paths["particles"] = write_text(out_dir / "particles.csv", "x,y,z\n" + rows)
    classes = "".join(f"{i},{name}\n" for i, name in enumerate(CLASS_NAMES))
    paths["classes"] = write_text(out_dir / "classes.csv", "label,name\n" + classes)
    return paths


# ----------------------------------------------------------------------------------------------- scene


class _Scene:
    """The volumes being drawn: density, class labels, and where ribosomes may not go (lumens)."""

    def __init__(self, config: PhantomConfig):
        self.config = config
        self.shape = config.shape
        self.density = np.zeros(self.shape, np.float32)
        self.labels = np.zeros(self.shape, np.int8)
        self.lumen = np.zeros(self.shape, bool)
        sep = max(config.voxels(config.leaflet_separation_nm), 1.0)
        width = max(config.voxels(config.leaflet_width_nm), 1.0)
        self.leaflet_sep, self.leaflet_sigma = sep, width / 2.355
        self.half_bilayer = (sep + width) / 2.0
        self.clearance = config.voxels(_CLEARANCE_NM)

    def box(self, centre: np.ndarray, half: float):
        """Slices of the box of half-size ``half`` around ``centre`` (clipped), and its offsets from ``centre``."""
        lo = np.maximum(np.floor(centre - half).astype(int), 0)
        hi = np.minimum(np.ceil(centre + half).astype(int) + 1, self.shape)
        slices = tuple(slice(a, b) for a, b in zip(lo, hi))
        offsets = [g - c for g, c in zip(np.ogrid[slices], centre)]
        return slices, offsets

    def free(self, centre: np.ndarray, radius: float, allow_lumen: bool) -> bool:
        """Whether the ball around ``centre`` holds no object (and no lumen unless allowed)."""
        slices, offsets = self.box(centre, radius)
        blocked = self.labels[slices] != BACKGROUND
        if not allow_lumen:
            blocked |= self.lumen[slices]
        return not blocked[sum(o**2 for o in offsets) <= radius**2].any()

    def paint(self, slices, density: np.ndarray, mask: np.ndarray, label: int) -> None:
        self.density[slices] = np.maximum(self.density[slices], density)
        self.labels[slices][mask] = label

    def membrane(self, slices, signed_distance: np.ndarray) -> None:
        """Paint a bilayer on the zero level of ``signed_distance`` (voxels, negative = inside the lumen)."""
        d = signed_distance
        half = self.leaflet_sep / 2
        s2 = 2 * self.leaflet_sigma**2
        profile = np.exp(-((d - half) ** 2) / s2) + np.exp(-((d + half) ** 2) / s2)
        inside = d < -self.half_bilayer
        lumen = np.where(inside, np.float32(_LUMEN_DENSITY), np.float32(0))
        self.paint(slices, np.maximum(profile * _DENSITY[MEMBRANE], lumen), np.abs(d) <= self.half_bilayer, MEMBRANE)
        self.lumen[slices] |= inside


def _random_rotation(rng) -> np.ndarray:
    """A uniformly random 3x3 rotation (QR of a Gaussian matrix with the signs fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


class _Sheet:
    """A gently curved membrane plane, nearly parallel to z, cutting off one side of the volume.

    ``distance`` is positive on the cytosol side; the other side is a lumen-like compartment.
    """

    def __init__(self, shape, rng):
        centre = (np.array(shape) - 1) / 2.0
        phi = rng.uniform(0, 2 * np.pi)
        normal = np.array([rng.uniform(-0.15, 0.15), np.sin(phi), np.cos(phi)])
        self.normal = normal / np.linalg.norm(normal)
        self.tangent = np.array([0.0, np.cos(phi), -np.sin(phi)])
        self.origin = centre - rng.uniform(0.25, 0.4) * min(shape[1:]) * self.normal
        self.curvature = rng.uniform(-1, 1) / (1.5 * max(shape[1:]))

    def distance(self, offsets) -> np.ndarray:
        """Approximate signed distance at points given as (z, y, x) arrays (broadcastable)."""
        rel = [o - float(c) for o, c in zip(offsets, self.origin)]
        along = sum(float(t) * r for t, r in zip(self.tangent, rel))
        return sum(float(n) * r for n, r in zip(self.normal, rel)) + float(self.curvature / 2) * along**2


def _draw_sheet(scene: _Scene, rng) -> _Sheet:
    sheet = _Sheet(scene.shape, rng)
    grids = np.ogrid[tuple(slice(0, n) for n in scene.shape)]
    scene.membrane(np.s_[:, :, :], sheet.distance([g.astype(np.float32) for g in grids]))
    return sheet


def _ellipsoid_distance(offsets, axes: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """First-order signed distance to an ellipsoid surface: level value over gradient norm."""
    local = [sum(rotation[i, j] * offsets[i] for i in range(3)) for j in range(3)]
    k0 = np.sqrt(sum((p / a) ** 2 for p, a in zip(local, axes)))
    k1 = np.sqrt(sum((p / a**2) ** 2 for p, a in zip(local, axes)))
    return (k0 - 1.0) * k0 / np.maximum(k1, 1e-6)


def _draw_vesicles(scene: _Scene, rng) -> None:
    """Spheres and randomly oriented ellipsoids in the cytosol, rejection-sampled so they overlap nothing."""
    cfg = scene.config
    nz, ny, nx = scene.shape
    for _ in range(cfg.n_vesicles):
        for _ in range(_MAX_TRIES):
            radius = cfg.voxels(rng.uniform(*cfg.vesicle_radius_nm))
            axes = radius * (rng.uniform(1.0, cfg.vesicle_max_aspect, 3) if rng.random() < 0.5 else np.ones(3))
            centre = np.array([rng.uniform(0.3, 0.7) * nz, rng.uniform(0.1, 0.9) * ny, rng.uniform(0.1, 0.9) * nx])
            if scene.free(centre, axes.max() + scene.half_bilayer + scene.clearance, allow_lumen=False):
                break
        else:
            continue  # no room left: fewer vesicles
        slices, offsets = scene.box(centre, axes.max() + 3 * scene.half_bilayer)
        scene.membrane(slices, _ellipsoid_distance(offsets, axes, _random_rotation(rng)))


# ------------------------------------------------------------------------------------------- filaments


def _filament_axis(rng, shape, radius: float) -> np.ndarray:
    """Points (z, y, x) every half voxel along a gently bowed line crossing the volume near the x-y plane."""
    nz, ny, nx = shape
    length = np.hypot(ny, nx)
    phi = rng.uniform(0, np.pi)
    direction, normal = np.array([np.sin(phi), np.cos(phi)]), np.array([np.cos(phi), -np.sin(phi)])
    middle = np.array([rng.uniform(0.2, 0.8) * ny, rng.uniform(0.2, 0.8) * nx])
    t = np.arange(-length, length, 0.5)
    bow = rng.uniform(-0.08, 0.08) * length * (1 - (t / length) ** 2)
    yx = middle + t[:, None] * direction + bow[:, None] * normal
    lo, hi = radius + 1, nz - 2 - radius
    z_mid = rng.uniform(lo, hi) if hi > lo else (nz - 1) / 2
    slack = max(min(z_mid - lo, hi - z_mid), 0.0)
    z = z_mid + rng.uniform(-1, 1) * slack * t / length
    points = np.column_stack([z, yx])
    inside = np.all((points >= 0) & (points <= np.array(shape) - 1), axis=1)
    return points[inside]


def _distance_to_axis(axis: np.ndarray, shape, reach: float):
    """Distances to the axis for the voxels within ``reach`` of it: (slices, voxel indices, distances).

    A distance transform of the rasterised axis finds the candidates, a k-d tree their exact distance.
    Voxels nearest to an end point are left out, so tubes end open and flat instead of in a dome.
    """
    lo = np.maximum(np.floor(axis.min(0) - reach - 1).astype(int), 0)
    hi = np.minimum(np.ceil(axis.max(0) + reach + 2).astype(int), shape)
    mask = np.ones(tuple(hi - lo), bool)
    idx = np.clip(np.rint(axis - lo).astype(int), 0, hi - lo - 1)
    mask[tuple(idx.T)] = False
    near = np.nonzero(ndimage.distance_transform_edt(mask) <= reach + 1)
    dist, nearest = cKDTree(axis).query(np.column_stack(near) + lo)
    body = (nearest > 0) & (nearest < len(axis) - 1)
    near = tuple(i[body] for i in near)
    return tuple(slice(a, b) for a, b in zip(lo, hi)), near, dist[body]


def _draw_filaments(scene: _Scene, rng, sheet: Optional[_Sheet]) -> None:
    """Microtubules (hollow) and actin (solid), kept apart from each other and on the cytosol side."""
    cfg = scene.config
    outer, inner = (cfg.voxels(d) / 2 for d in _MICROTUBULE_DIAMETERS_NM)
    actin = cfg.voxels(_ACTIN_DIAMETER_NM) / 2
    kinds = [(MICROTUBULE, outer, inner)] * cfg.n_microtubules + [(ACTIN, actin, 0.0)] * cfg.n_actin
    drawn: List[Tuple[np.ndarray, float]] = []
    for label, r_out, r_in in kinds:
        for _ in range(_MAX_TRIES):
            axis = _filament_axis(rng, scene.shape, r_out)
            if sheet is not None:
                axis = axis[sheet.distance(axis.T) > r_out + scene.half_bilayer + scene.clearance]
            if len(axis) < 20:
                continue
            gaps = [cKDTree(other).query(axis, distance_upper_bound=r_out + r + scene.clearance)[0] for other, r in drawn]
            if not any(np.isfinite(g).any() for g in gaps):
                break
        else:
            continue
        drawn.append((axis, r_out))
        slices, near, d = _distance_to_axis(axis, scene.shape, r_out + 1)
        wall = np.minimum(d - r_in, r_out - d) if r_in > 0 else r_out - d
        patch_density = np.zeros(tuple(s.stop - s.start for s in slices), np.float32)
        patch_density[near] = np.clip(wall + 0.5, 0, 1) * _DENSITY[label]
        patch_mask = np.zeros(patch_density.shape, bool)
        patch_mask[near] = wall >= 0
        scene.paint(slices, patch_density, patch_mask, label)


# ------------------------------------------------------------------------------------------- particles


def _unit_vector(rng) -> np.ndarray:
    v = rng.standard_normal(3)
    return v / np.linalg.norm(v)


def _ribosome_lobes(rng, diameter: float):
    """Large and small subunit on a random axis, offset so the centre of mass stays near the origin."""
    u = _unit_vector(rng)
    return [(0.10 * diameter * u, 0.40 * diameter), (-0.22 * diameter * u, 0.30 * diameter)]


def _protein_lobes(rng, diameter: float):
    """One to three overlapping domains: small, irregular globules."""
    return [(rng.uniform(0, 0.15) * diameter * _unit_vector(rng), rng.uniform(0.3, 0.4) * diameter)
            for _ in range(rng.integers(1, 4))]


def _blob(rng, lobes, diameter: float, offsets):
    """Density and mask of a union of spheres with lumpy surface and interior, clipped to the diameter."""
    inside = np.max([r - np.sqrt(sum((o - c) ** 2 for o, c in zip(offsets, centre))) for centre, r in lobes], axis=0)
    field = ndimage.gaussian_filter(rng.standard_normal(inside.shape), max(0.08 * diameter, 0.7))
    field /= field.std() + 1e-12
    inside = inside + 0.06 * diameter * field
    inside = np.minimum(inside, diameter / 2 - np.sqrt(sum(o**2 for o in offsets)))
    density = np.clip(inside + 0.5, 0, 1) * np.clip(1 + 0.2 * field, 0.6, 1.4)
    return density.astype(np.float32), inside >= 0


def _place_particles(scene: _Scene, rng, count: int, diameter: float, label: int, lobes) -> List[np.ndarray]:
    """Rejection-sample centres whose ball clears every drawn object; ribosomes also stay out of lumens.

    Particles lie wholly inside the volume. Returns the centres (z, y, x) placed, fewer than ``count``
    when the volume is too crowded.
    """
    half = diameter / 2
    margin = np.minimum(half, (np.array(scene.shape) - 1) / 2)
    centres: List[np.ndarray] = []
    for _ in range(count):
        for _ in range(_MAX_TRIES):
            centre = np.round(rng.uniform(margin, np.array(scene.shape) - 1 - margin))
            if scene.free(centre, half + scene.clearance, allow_lumen=label != RIBOSOME):
                break
        else:
            continue
        centres.append(centre)
        slices, offsets = scene.box(centre, half + 1)
        density, mask = _blob(rng, lobes(rng, diameter), diameter, offsets)
        scene.paint(slices, density * _DENSITY[label], mask, label)
    return centres


# --------------------------------------------------------------------------------------------- imaging


def _projector(nz: int, nx: int, angles: np.ndarray) -> Tuple[sparse.csr_matrix, int]:
    """Sparse matrix projecting an x-z slice onto a detector line per tilt (linear interpolation).

    Every y slice shares it, so one sparse-dense product projects the whole volume; its transpose
    is the matching back-projector. The detector is wide enough that no tilt truncates the slab.
    """
    n_det = int(np.ceil(np.hypot(nz, nx))) + 2
    z = np.arange(nz) - (nz - 1) / 2
    x = np.arange(nx) - (nx - 1) / 2
    u = (x[None, None, :] * np.cos(angles)[:, None, None] - z[None, :, None] * np.sin(angles)[:, None, None]
         + (n_det - 1) / 2)
    i0 = np.floor(u).astype(np.int64)
    w = (u - i0).astype(np.float32)
    rows = i0 + n_det * np.arange(len(angles))[:, None, None]
    cols = np.broadcast_to(np.arange(nz * nx).reshape(nz, nx), u.shape)
    matrix = sparse.csr_matrix(
        (np.concatenate([(1 - w).ravel(), w.ravel()]),
         (np.concatenate([rows.ravel(), rows.ravel() + 1]), np.concatenate([cols.ravel(), cols.ravel()]))),
        shape=(len(angles) * n_det, nz * nx),
    )
    return matrix, n_det


def _ctf(n_det: int, ny: int, voxel_size_A: float, defocus_um: float) -> np.ndarray:
    """Phase-flipped CTF magnitude on the (detector, y) rfft grid: weak low frequencies, zeros past the first."""
    ku = scipy.fft.fftfreq(n_det, d=voxel_size_A)[:, None]
    ky = scipy.fft.rfftfreq(ny, d=voxel_size_A)[None, :]
    chi = np.pi * _ELECTRON_WAVELENGTH_A * defocus_um * 1e4 * (ku**2 + ky**2)
    return np.abs(np.sqrt(1 - _AMPLITUDE_CONTRAST**2) * np.sin(chi) + _AMPLITUDE_CONTRAST * np.cos(chi))


def _wbp_filter(n_det: int) -> Tuple[np.ndarray, int]:
    """Ramp filter (from its band-limited spatial kernel, so the mean survives) with a Hann roll-off."""
    n_pad = int(2 ** np.ceil(np.log2(2 * n_det)))
    n = np.concatenate([np.arange(1, n_pad // 2 + 1, 2), np.arange(n_pad // 2 - 1, 0, -2)])
    kernel = np.zeros(n_pad)
    kernel[0] = 0.25
    kernel[1::2] = -1 / (np.pi * n) ** 2
    ramp = 2 * np.real(scipy.fft.rfft(kernel))
    hann = 0.5 * (1 + np.cos(2 * np.pi * scipy.fft.rfftfreq(n_pad)))
    return (ramp * hann).astype(np.float32), n_pad


def _image(density: np.ndarray, config: PhantomConfig, rng) -> np.ndarray:
    """Tilt series about y with CTF and noise, reconstructed by weighted back-projection; dense = dark, mean 0, std 1."""
    nz, ny, nx = density.shape
    lo, hi = config.tilt_range_deg
    angles = np.deg2rad(np.arange(lo, hi + config.tilt_step_deg / 2, config.tilt_step_deg))
    projector, n_det = _projector(nz, nx, angles)
    slices_as_columns = density.transpose(0, 2, 1).reshape(nz * nx, ny)
    tilts = (projector @ slices_as_columns).reshape(len(angles), n_det, ny)
    if config.defocus_um > 0:
        spectrum = scipy.fft.rfft2(tilts, axes=(1, 2))
        spectrum *= _ctf(n_det, ny, config.voxel_size_A, config.defocus_um).astype(np.float32)
        tilts = scipy.fft.irfft2(spectrum, s=(n_det, ny), axes=(1, 2)).astype(np.float32)
    if config.snr is not None:
        noise_std = np.sqrt(tilts.var() / config.snr)
        tilts += noise_std * rng.standard_normal(tilts.shape, dtype=np.float32)
    weights, n_pad = _wbp_filter(n_det)
    spectrum = scipy.fft.rfft(tilts, n=n_pad, axis=1)
    spectrum *= weights[None, :, None]
    tilts = scipy.fft.irfft(spectrum, n=n_pad, axis=1)[:, :n_det].astype(np.float32)
    back = projector.T.tocsr() @ tilts.reshape(len(angles) * n_det, ny)
    tomogram = -back.reshape(nz, nx, ny).transpose(0, 2, 1)
    tomogram -= tomogram.mean()
    tomogram /= tomogram.std() + 1e-12
    return np.ascontiguousarray(tomogram, dtype=np.float32)
