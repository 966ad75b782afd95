"""Thresholding a probability volume into a mask and removing small 3-D connected components, by chunks.

Components are labelled chunk by chunk (face connectivity, scipy's default) and joined where they touch
across chunk borders, so the result equals labelling the whole volume at once while only one chunk of
labels is ever in memory. A second pass relabels each chunk and keeps the components large enough. The same
labelling gives the mask's pieces as point clouds (membrane_pieces).
"""

from typing import Callable, List, NamedTuple, Tuple

import numpy as np
from scipy import ndimage as ndi
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from ..tomoio import release_pages
from .volumes import RunningStatistics

CONNECTIVITY = ndi.generate_binary_structure(3, 1)


def write_membrane_mask(
    probability: np.ndarray,
    mask: np.ndarray,
    threshold: float,
    min_component_voxels: int,
    chunk_slices: int,
    on_chunk: Callable[[], None] = lambda: None,
) -> Tuple[RunningStatistics, RunningStatistics]:
    """Fill ``mask`` (int8 0/1) from ``probability`` >= threshold, without components under the minimum size.

    Returns the statistics of both volumes for their headers; ``on_chunk`` is called after every chunk.
    """
    chunks = [(z, min(z + chunk_slices, probability.shape[0])) for z in range(0, probability.shape[0], chunk_slices)]
    probability_stats, mask_stats = RunningStatistics(), RunningStatistics()
    keep = _components_to_keep(probability, threshold, min_component_voxels, chunks) if min_component_voxels > 1 else None
    for index, (z0, z1) in enumerate(chunks):
        values = np.asarray(probability[z0:z1])
        probability_stats.add(values)
        binary = values >= threshold
        if keep is not None:
            labels, count = ndi.label(binary, CONNECTIVITY)
            offset = keep.offsets[index]
            binary = np.concatenate([[False], keep.labels[offset + 1 : offset + count + 1]])[labels]
        mask[z0:z1] = binary
        mask_stats.add(binary)
        release_pages(probability)
        release_pages(mask)
        on_chunk()
    return probability_stats, mask_stats


class _Kept(NamedTuple):
    """Whether each global label is kept (label 0: background, never), and each chunk's label offset."""

    labels: np.ndarray
    offsets: List[int]


class _Components(NamedTuple):
    """The 3-D component of each global label (label 0: background), component sizes in voxels, and each chunk's
    label offset: a chunk's label l is global label l + offset."""

    of_label: np.ndarray
    sizes: np.ndarray
    offsets: List[int]


def _components_to_keep(probability, threshold: float, min_voxels: int, chunks) -> _Kept:
    found = _components(lambda z0, z1: np.asarray(probability[z0:z1]) >= threshold, chunks, probability)
    keep = found.sizes[found.of_label] >= min_voxels
    keep[0] = False
    return _Kept(keep, found.offsets)


def _components(binary_chunk: Callable[[int, int], np.ndarray], chunks, volume) -> _Components:
    """Label each chunk of binary_chunk(z0, z1) and join the labels that touch across chunk borders."""
    sizes = [np.zeros(1, dtype=np.int64)]
    offsets: List[int] = []
    pairs = []  # (label in the last slice of a chunk, touching label in the first slice of the next)
    previous_last = None
    offset = 0
    for z0, z1 in chunks:
        labels, count = ndi.label(binary_chunk(z0, z1), CONNECTIVITY)
        release_pages(volume)
        sizes.append(np.bincount(labels.ravel(), minlength=count + 1)[1:])
        first = np.where(labels[0] > 0, labels[0].astype(np.int64) + offset, 0)
        if previous_last is not None:
            touching = (previous_last > 0) & (first > 0)
            base = offset + count + 1  # unique (a, b) pairs through one integer a * base + b: fast
            keys = np.unique(previous_last[touching] * base + first[touching])
            pairs.append(np.stack([keys // base, keys % base], axis=1))
        previous_last = np.where(labels[-1] > 0, labels[-1].astype(np.int64) + offset, 0)
        offsets.append(offset)
        offset += count
    sizes = np.concatenate(sizes)
    joined = np.concatenate(pairs) if pairs else np.zeros((0, 2), dtype=np.int64)
    graph = sparse.coo_matrix((np.ones(len(joined)), (joined[:, 0], joined[:, 1])), shape=(offset + 1, offset + 1))
    _, component = connected_components(graph, directed=False)
    return _Components(component, np.bincount(component, weights=sizes), offsets)


def membrane_pieces(mask: np.ndarray, chunk_slices: int, spacing: int) -> np.ndarray:
    """The 3-D connected pieces of a mask as points: rows (piece, x, y, z), voxels of the mask.

    Pieces are numbered from 1, largest first. Each is thinned to one point per cube of ``spacing`` voxels that
    it enters (the mean of its voxels there), so a membrane becomes a cloud of points about ``spacing`` apart
    that follows its surface. Chunk by chunk, like the mask itself.
    """
    chunks = [(z, min(z + chunk_slices, mask.shape[0])) for z in range(0, mask.shape[0], chunk_slices)]
    found = _components(lambda z0, z1: np.asarray(mask[z0:z1]) > 0, chunks, mask)
    background = found.of_label[0]
    sizes = found.sizes.copy()
    sizes[background] = -1
    order = np.argsort(-sizes, kind="stable")  # components, largest first; background last
    piece_of_component = np.empty(len(order), dtype=np.int64)
    piece_of_component[order] = np.arange(1, len(order) + 1)
    partial = []  # per chunk: (piece, cube z, cube y, cube x) keys with their voxel count and x, y, z sums
    for index, (z0, z1) in enumerate(chunks):
        labels, _ = ndi.label(np.asarray(mask[z0:z1]) > 0, CONNECTIVITY)
        release_pages(mask)
        z, y, x = np.nonzero(labels)
        piece = piece_of_component[found.of_label[labels[z, y, x].astype(np.int64) + found.offsets[index]]]
        z = z + z0
        keys = np.stack([piece, z // spacing, y // spacing, x // spacing], axis=1)
        partial.append(_cube_sums(keys, np.stack([x, y, z], axis=1).astype(np.float64), np.ones(len(keys))))
    if not partial or not sum(len(keys) for keys, _, _ in partial):
        return np.zeros((0, 4))
    keys, sums, counts = _cube_sums(*(np.concatenate(parts) for parts in zip(*partial)))
    return np.column_stack([keys[:, 0], sums / counts[:, None]])


def _cube_sums(keys, coordinates, counts):
    """Rows of equal keys summed: (unique keys in order, coordinate sums, counts)."""
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    sums = np.stack([np.bincount(inverse, weights=coordinates[:, axis], minlength=len(unique)) for axis in range(3)],
                    axis=1)
    return unique, sums, np.bincount(inverse, weights=counts, minlength=len(unique))
