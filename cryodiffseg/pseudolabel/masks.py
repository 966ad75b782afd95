"""Canvas -> foreground -> instances -> membranes and macromolecules.

Dark structures on a canvas are the foreground; the foreground is split into instances; round instances
are macromolecules and everything else in the foreground is membrane.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.measure import regionprops
from skimage.morphology import h_maxima
from skimage.segmentation import relabel_sequential, watershed

from ..errors import CryoDiffSegError
from .canvas import minmax_scale

log = logging.getLogger("cryodiffseg")

SPLITTERS = ("auto", "cellpose", "watershed")


@dataclass(frozen=True)
class MaskConfig:
    """Binarisation, instance split and circularity settings (defaults are the published ones)."""

    blur_size: int = 7
    blur_sigma: float = 1.5
    threshold_block: int = 15  # neighbourhood of the Gaussian-weighted local mean
    threshold_offset: float = 3.0  # foreground: darker than the local mean minus this
    splitter: str = "auto"  # "auto" (cellpose if its weights are here, else watershed), "cellpose", "watershed"
    cellpose_model: str = "cyto3"  # a cellpose model name, or the path of a cellpose 3 weights file
    cellpose_gpu: bool = True  # used only when torch sees a GPU
    instance_diameter: float = 10.0  # expected instance diameter, px
    flow_threshold: float = 0.4
    cellprob_threshold: float = 0.0
    min_instance_size: int = 15  # px; smaller pieces stay unlabelled (cellpose's own default)
    watershed_split_depth: float = 0.15  # fraction of instance_diameter, see WatershedSplitter
    min_circularity: float = 0.95  # 4 pi A / P^2 at or above this: a macromolecule

    def validate(self) -> None:
        """Checked before the attention pass: OpenCV and the splitters fail only when they get there."""
        if self.threshold_block < 3 or self.threshold_block % 2 == 0:
            raise CryoDiffSegError(f"The threshold block must be an odd number of pixels, at least 3, got {self.threshold_block}.")
        if self.blur_size < 1 or self.blur_size % 2 == 0:
            raise CryoDiffSegError(f"The blur size must be an odd number of pixels, got {self.blur_size}.")
        if not self.instance_diameter > 0:
            raise CryoDiffSegError(f"The instance diameter must be positive, got {self.instance_diameter} px.")
        if self.splitter not in SPLITTERS:
            raise CryoDiffSegError(f"Unknown splitter '{self.splitter}': use one of {', '.join(SPLITTERS)}.")
        if not 0 <= self.min_circularity <= 1:
            raise CryoDiffSegError(f"The circularity must be in [0, 1], got {self.min_circularity}.")


def binarize(canvas: np.ndarray, config: MaskConfig = MaskConfig()) -> np.ndarray:
    """Foreground (True) = pixels darker than their Gaussian-weighted neighbourhood mean minus the offset.

    As OpenCV computes it: at or below the mean rounded to uint8 (replicated borders) minus the offset.
    """
    canvas = np.asarray(canvas)
    if canvas.dtype != np.uint8:
        canvas = np.round(minmax_scale(canvas)).astype(np.uint8)
    blurred = cv2.GaussianBlur(canvas, (config.blur_size,) * 2, config.blur_sigma)
    bright = cv2.adaptiveThreshold(
        blurred, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY,
        config.threshold_block, config.threshold_offset,
    )
    return bright == 0


def circularity(region) -> float:
    """4 pi A / P^2 of a skimage region (P taken as 1 when zero); about 1 for a disk."""
    perimeter = region.perimeter or 1.0
    return 4.0 * np.pi * region.area / perimeter**2


def separate_membranes(
    binary: np.ndarray, labels: np.ndarray, config: MaskConfig = MaskConfig()
) -> Tuple[np.ndarray, np.ndarray]:
    """(membrane mask, macromolecule labels): round instances are macromolecules, other foreground is membrane."""
    round_ids = [r.label for r in regionprops(labels) if circularity(r) >= config.min_circularity]
    macromolecules = np.where(np.isin(labels, round_ids), labels, 0)
    macromolecules = relabel_sequential(macromolecules)[0].astype(np.int32)
    membranes = np.asarray(binary, dtype=bool) & (macromolecules == 0)
    return membranes, macromolecules


class WatershedSplitter:
    """Weight-free split: watershed of the distance transform from markers at its significant maxima.

    A marker is a regional maximum of the distance transform that rises at least ``watershed_split_depth``
    x diameter above the neck joining it to any higher one, so two touching disks get one marker each. A
    membrane band has a long flat ridge instead: local-maximum detection with a minimum spacing
    (``peak_local_max``) would put a marker every few pixels along it and cut it into short, compact
    chunks that the circularity rule then mistakes for macromolecules; a flat ridge is one regional maximum.
    """

    method = "watershed"

    def __init__(self, config: MaskConfig):
        self.config = config

    def split(self, binary: np.ndarray) -> np.ndarray:
        binary = np.asarray(binary, dtype=bool)
        distance = ndi.distance_transform_edt(binary)
        depth = self.config.watershed_split_depth * self.config.instance_diameter
        markers = ndi.label(h_maxima(distance, depth).astype(bool) & binary)[0]  # 4-connected, as the flooding
        _mark_unmarked_components(markers, distance, binary)
        labels = watershed(-distance, markers, mask=binary)
        too_small = np.bincount(labels.ravel()) < self.config.min_instance_size  # as cellpose's min_size
        too_small[0] = False
        labels[too_small[labels]] = 0
        return relabel_sequential(labels)[0].astype(np.int32)


def _mark_unmarked_components(markers: np.ndarray, distance: np.ndarray, binary: np.ndarray) -> None:
    """Give every foreground component without a marker (too thin to reach the depth) one at its centre."""
    components, count = ndi.label(binary)
    unmarked = np.setdiff1d(np.arange(1, count + 1), components[markers > 0])
    next_id = markers.max() + 1
    for offset, position in enumerate(ndi.maximum_position(distance, components, unmarked)):
        markers[position] = next_id + offset


class CellposeSplitter:
    """Cellpose 3 instance split of the binary image; the network is loaded once and reused."""

    method = "cellpose"

    def __init__(self, config: MaskConfig, weights: "CellposeWeights"):
        from cellpose import models  # heavy (torch): imported only when cellpose is used

        self.config = config
        try:
            if weights.given_as_path:
                self.model = models.CellposeModel(gpu=config.cellpose_gpu, pretrained_model=str(weights.path))
            else:
                self.model = models.CellposeModel(gpu=config.cellpose_gpu, model_type=weights.name)
        except Exception as exc:  # corrupt file, cellpose 4 weights, wrong architecture ...
            detail = " ".join(str(exc).split())
            raise CryoDiffSegError(f"Cellpose could not load the weights {weights.path}: {detail}") from exc

    def split(self, binary: np.ndarray) -> np.ndarray:
        image = np.asarray(binary, dtype=np.uint8) * 255
        masks, _flows, _styles = self.model.eval(
            image,
            channels=[0, 0],
            diameter=self.config.instance_diameter,
            flow_threshold=self.config.flow_threshold,
            cellprob_threshold=self.config.cellprob_threshold,
            min_size=self.config.min_instance_size,
        )
        return np.asarray(masks, dtype=np.int32)


@dataclass(frozen=True)
class CellposeWeights:
    """Where cellpose weights were looked for, and whether they are there (``reason`` says why not)."""

    name: str  # the configured model name or path
    path: Optional[Path]  # the weights file, when known
    given_as_path: bool  # configured as a weights file rather than a model name
    available: bool
    reason: str


def find_cellpose_weights(model: str) -> CellposeWeights:
    """Locate the weights of a cellpose model name or path without downloading anything.

    A name resolves like cellpose resolves it: a file of that name (``<name>torch_0`` for cyto, cyto2 and
    nuclei) in ``cellpose.models.MODEL_DIR``, which cellpose sets from CELLPOSE_LOCAL_MODELS_PATH (read when
    cellpose is first imported) or ~/.cellpose/models. If that file is missing cellpose would download it,
    which fails offline, so it counts as unavailable.
    """
    path = Path(model).expanduser()
    if path.is_file():
        return CellposeWeights(model, path, True, True, f"weights file {path}")
    if path.suffix or len(path.parts) > 1:  # meant as a path, not a name
        return CellposeWeights(model, path, True, False, f"the weights file {path} does not exist")
    try:
        from cellpose import models
    except ImportError:
        return CellposeWeights(model, None, False, False, "cellpose is not installed")
    if model not in models.MODEL_NAMES and model not in models.get_user_models():
        return CellposeWeights(model, None, False, False, f"'{model}' is neither a file nor a cellpose model name")
    basename = f"{model}torch_0" if model in ("cyto", "cyto2", "nuclei") else model
    path = Path(models.MODEL_DIR) / basename
    if path.is_file():
        return CellposeWeights(model, path, False, True, f"cellpose model '{model}' found at {path}")
    reason = f"the weights of cellpose model '{model}' are not in {path.parent}"
    return CellposeWeights(model, path, False, False, reason)


class InstanceSplitter:
    """Splits a binary image into instances with the configured method; ``method`` says which one is used."""

    def __init__(self, config: MaskConfig = MaskConfig()):
        if config.splitter not in SPLITTERS:
            choices = ", ".join(SPLITTERS)
            raise CryoDiffSegError(f"Unknown instance splitter '{config.splitter}'; choose one of {choices}.")
        self.config = config
        self._splitter = self._choose(config)

    @property
    def method(self) -> str:
        return self._splitter.method

    def split(self, binary: np.ndarray) -> np.ndarray:
        """int32 instance labels (0 = background) of a boolean foreground image."""
        return self._splitter.split(binary)

    @staticmethod
    def _choose(config: MaskConfig):
        if config.splitter == "watershed":
            return WatershedSplitter(config)
        weights = find_cellpose_weights(config.cellpose_model)
        if config.splitter == "cellpose":
            if not weights.available:
                raise CryoDiffSegError(
                    f"Cannot use cellpose: {weights.reason}; give the path of a cellpose 3 weights file as the "
                    "model, or put the weights in cellpose's model folder (~/.cellpose/models or "
                    "CELLPOSE_LOCAL_MODELS_PATH)."
                )
            return CellposeSplitter(config, weights)
        if not weights.available:
            log.info("Instance split: watershed, because %s.", weights.reason)
            return WatershedSplitter(config)
        try:
            splitter = CellposeSplitter(config, weights)
        except CryoDiffSegError as exc:
            log.warning("Instance split: watershed, because %s", exc)
            return WatershedSplitter(config)
        log.info("Instance split: cellpose, %s.", weights.reason)
        return splitter
