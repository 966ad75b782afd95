"""Cutting a slice into square model-input tiles and putting per-tile results back together.

Two layouts:
- ``quadrisect`` (the reference): resize the slice to 2T x 2T and cut a 2 x 2 grid of T x T tiles. The
  scale then depends on the slice size (a 960-px slice is barely resized, a 4k one shrinks 4x).
- ``native`` (default): T x T tiles at the tomogram's own pixel size, overlapping by ``overlap`` px.
  Every pixel-size threshold of the later stages (blur, adaptive block, CellPose diameter, point
  distances) then means the same physical size for any tomogram, which is what the reference's
  thresholds assume at its ~1x scale (960 -> 1024 px).
Each output pixel is taken from the tile whose centre is nearest (the overlaps are split in the middle).
A network sees zero padding at a tile's edges and its features there differ; native tiles therefore
start half an overlap outside the slice (reflection-padded) so that no pixel used from a tile lies
within half an overlap of that tile's edge.
"""

from dataclasses import dataclass
from typing import List, Optional, Tuple

import io

import cv2
import numpy as np
from PIL import Image

from ..errors import CryoDiffSegError

LAYOUTS = ("native", "quadrisect")


@dataclass(frozen=True)
class Tile:
    """Tile ``index`` covers slice rows ``y0 .. y0 + size*scale_y`` (and likewise x) before resizing.

    ``own_*`` is the half-open slice region this tile is responsible for when stitching.
    """

    index: int
    y0: float
    x0: float
    scale_y: float  # slice pixels per tile pixel
    scale_x: float
    own_y: Tuple[int, int]
    own_x: Tuple[int, int]


@dataclass
class TileLayout:
    layout: str
    tile_size: int
    slice_shape: Tuple[int, int]
    tiles: List[Tile]

    def extract(self, image: np.ndarray) -> np.ndarray:
        """(n_tiles, T, T) tiles of a 2-D slice image."""
        T = self.tile_size
        if self.layout == "quadrisect":
            big = cv2.resize(image, (2 * T, 2 * T), interpolation=cv2.INTER_LINEAR)
            return np.stack([big[r * T : (r + 1) * T, c * T : (c + 1) * T] for r in range(2) for c in range(2)])
        H, W = self.slice_shape
        before_y, before_x = -min(int(t.y0) for t in self.tiles), -min(int(t.x0) for t in self.tiles)
        after_y = max(int(t.y0) for t in self.tiles) + T - H
        after_x = max(int(t.x0) for t in self.tiles) + T - W
        padded = np.pad(image, ((before_y, max(0, after_y)), (before_x, max(0, after_x))), mode="reflect")
        return np.stack([padded[int(t.y0) + before_y : int(t.y0) + before_y + T, int(t.x0) + before_x : int(t.x0) + before_x + T] for t in self.tiles])

    def stitch(self, tiles: np.ndarray, interpolation: int = cv2.INTER_NEAREST) -> np.ndarray:
        """Per-tile images (n_tiles, T, T) -> one slice-sized image (nearest by default, for masks)."""
        H, W = self.slice_shape
        T = self.tile_size
        if self.layout == "quadrisect":
            big = np.zeros((2 * T, 2 * T), dtype=tiles.dtype)
            for i, tile in enumerate(tiles):
                r, c = divmod(i, 2)
                big[r * T : (r + 1) * T, c * T : (c + 1) * T] = tile
            return cv2.resize(big, (W, H), interpolation=interpolation)
        out = np.zeros((H, W), dtype=tiles.dtype)
        for tile, image in zip(self.tiles, tiles):
            (ya, yb), (xa, xb) = tile.own_y, tile.own_x
            oy, ox = int(tile.y0), int(tile.x0)
            out[ya:yb, xa:xb] = image[ya - oy : yb - oy, xa - ox : xb - ox]
        return out

    def to_slice(self, tile_index: int, points_xy: np.ndarray, owned_only: bool = True) -> np.ndarray:
        """Map (n, 2) tile-pixel (x, y) points to slice pixels; optionally keep only the tile's own region."""
        tile = self.tiles[tile_index]
        points = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
        mapped = np.column_stack([tile.x0 + points[:, 0] * tile.scale_x, tile.y0 + points[:, 1] * tile.scale_y])
        if owned_only and len(mapped):
            (ya, yb), (xa, xb) = tile.own_y, tile.own_x
            inside = (mapped[:, 0] >= xa) & (mapped[:, 0] < xb) & (mapped[:, 1] >= ya) & (mapped[:, 1] < yb)
            mapped = mapped[inside]
        return mapped


def plan_tiles(slice_shape: Tuple[int, int], tile_size: int, layout: str = "native", overlap: Optional[int] = None) -> TileLayout:
    """Tiles of a slice; native tiles overlap by ``overlap`` px (None: 1/4 of a tile, the default)."""
    H, W = (int(s) for s in slice_shape)
    if overlap is None:
        overlap = tile_size // 4
    if layout not in LAYOUTS:
        raise CryoDiffSegError(f"Unknown tiling '{layout}': use one of {', '.join(LAYOUTS)}.")
    if layout == "quadrisect":
        sy, sx = H / (2 * tile_size), W / (2 * tile_size)
        tiles = []
        for i in range(4):
            r, c = divmod(i, 2)
            own_y = (int(round(r * H / 2)), int(round((r + 1) * H / 2)))
            own_x = (int(round(c * W / 2)), int(round((c + 1) * W / 2)))
            tiles.append(Tile(i, r * tile_size * sy, c * tile_size * sx, sy, sx, own_y, own_x))
        return TileLayout(layout, tile_size, (H, W), tiles)
    if not 0 <= overlap < tile_size:
        raise CryoDiffSegError(f"Tile overlap must be between 0 and {tile_size - 1} px, got {overlap}.")
    margin = overlap // 2
    starts_y = [s - margin for s in _starts(H + 2 * margin, tile_size, overlap)]
    starts_x = [s - margin for s in _starts(W + 2 * margin, tile_size, overlap)]
    own_y, own_x = _ownership(starts_y, tile_size, H), _ownership(starts_x, tile_size, W)
    tiles = [
        Tile(i * len(starts_x) + j, y0, x0, 1.0, 1.0, oy, ox)
        for i, (y0, oy) in enumerate(zip(starts_y, own_y))
        for j, (x0, ox) in enumerate(zip(starts_x, own_x))
    ]
    return TileLayout(layout, tile_size, (H, W), tiles)


def _starts(length: int, size: int, overlap: int) -> List[int]:
    if length <= size:
        return [0]
    count = int(np.ceil((length - overlap) / (size - overlap)))
    return [int(round(v)) for v in np.linspace(0, length - size, count)]


def _ownership(starts: List[int], size: int, length: int) -> List[Tuple[int, int]]:
    centres = [s + size / 2 for s in starts]
    bounds = [0] + [int(round((a + b) / 2)) for a, b in zip(centres, centres[1:])] + [length]
    if len(starts) == 1:  # a slice no larger than one tile: all of it, wherever the tile starts
        bounds = [0, length]
    return list(zip(bounds[:-1], bounds[1:]))


def jpeg_round_trip(tiles: np.ndarray, quality: int) -> np.ndarray:
    """uint8 tiles (n, T, T) as the reference's model sees them: each written by OpenCV as a 3-channel JPEG of
    this quality and read back by PIL as greyscale (its luma of the decoded colours)."""
    out = np.empty_like(tiles)
    for i, tile in enumerate(tiles):
        ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(tile, cv2.COLOR_GRAY2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise CryoDiffSegError(f"OpenCV could not encode a {tile.shape[0]}-px tile as JPEG.")
        out[i] = np.asarray(Image.open(io.BytesIO(encoded.tobytes())).convert("L"))
    return out
