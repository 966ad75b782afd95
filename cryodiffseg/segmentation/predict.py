"""Membrane probabilities of 2-D planes with a trained U-Net: z-score, rescale, tile, batch, stitch.

Every plane is normalised on its own and the network runs with batch norm in eval mode, so a plane's
result does not depend on which planes share its chunk or batch. Planes are resampled to the voxel
size the model was trained at and the probabilities resampled back. Large planes are cut into
overlapping tiles (each pixel taken from the tile whose centre is nearest), so memory depends on the
tile size, not on the plane size.
"""

import math
from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..folding import folded_for_inference
from ..pseudolabel.tiling import TileLayout, plan_tiles
from .losses import MEMBRANE
from .normalisation import slice_statistics
from .unet import UNet2D

_RESCALE_TOLERANCE = 0.01  # voxel sizes within 1% count as equal: resampling would cost more than it changes


class SlicePredictor:
    """``predictor(planes (n, H, W))`` -> membrane probabilities (n, H, W) float32 in [0, 1].

    ``scale``: tomogram voxel size / training voxel size (2.0: a 20 A tomogram, a 10 A model).
    """

    def __init__(self, model: UNet2D, scale: float, tile_size: int, tile_overlap: int, batch_size: int, device):
        self.model = folded_for_inference(model).to(device, memory_format=torch.channels_last)  # channels-last: faster convolutions
        self.scale = 1.0 if abs(scale - 1.0) <= _RESCALE_TOLERANCE else float(scale)
        self.tile_size = tile_size
        self.tile_overlap = tile_overlap
        self.batch_size = batch_size
        self.device = device

    def __call__(self, planes: np.ndarray) -> np.ndarray:
        count, height, width = planes.shape
        images = np.empty(planes.shape, dtype=np.float32)
        for plane, image in zip(planes, images):
            mean, std = slice_statistics(plane)
            np.subtract(plane, mean, out=image)
            image /= std
        if self.scale != 1.0:
            images = _resize(images, (max(1, round(height * self.scale)), max(1, round(width * self.scale))))
        layout = self._layout(images.shape[1:])
        per_plane = len(layout.tiles)
        if per_plane == 1 and layout.tile_size == images.shape[1] == images.shape[2]:
            tiles = images  # the planes are the tiles: no copy
        else:
            tiles = np.empty((count * per_plane, layout.tile_size, layout.tile_size), dtype=np.float32)
            for i, image in enumerate(images):
                tiles[i * per_plane : (i + 1) * per_plane] = layout.extract(image)
        probabilities = self._run(tiles)
        del tiles
        for i in range(count):  # the normalised images are no longer needed: stitch into their buffer
            images[i] = layout.stitch(probabilities[i * per_plane : (i + 1) * per_plane])
        del probabilities
        if self.scale != 1.0:
            images = _resize(images, (height, width))
        return np.clip(images, 0.0, 1.0, out=images)

    def _layout(self, shape: Tuple[int, int]) -> TileLayout:
        """One tile (rounded up to the network's size multiple) for small planes, overlapping tiles otherwise."""
        multiple = self.model.config.size_multiple
        if max(shape) <= self.tile_size:
            return plan_tiles(shape, math.ceil(max(shape) / multiple) * multiple, "native", overlap=0)
        return plan_tiles(shape, self.tile_size, "native", overlap=self.tile_overlap)

    @torch.inference_mode()
    def _run(self, tiles: np.ndarray) -> np.ndarray:
        out = np.empty(tiles.shape, dtype=np.float32)
        for start in range(0, len(tiles), self.batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(tiles[start : start + self.batch_size]))[:, None]
            logits = self.model(batch.to(self.device, memory_format=torch.channels_last))
            out[start : start + len(batch)] = torch.softmax(logits.float(), dim=1)[:, MEMBRANE].cpu().numpy()
        return out


def _resize(images: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Bilinear resize of (n, H, W) images; anti-aliased when shrinking."""
    shrinking = size[0] < images.shape[1] or size[1] < images.shape[2]
    tensor = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))[:, None]
    return F.interpolate(tensor, size=size, mode="bilinear", align_corners=False, antialias=shrinking)[:, 0].numpy()
