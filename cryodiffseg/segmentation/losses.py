"""The training objective, (cross-entropy + soft Dice) / 2, and the hard Dice used to report quality.

Dice is taken over the membrane class of the whole batch: membranes cover a few percent of a slice, and
Dice weighs them as much as the background that cross-entropy alone would let dominate. Pixels
labelled IGNORE (outside the slice) count in neither term.
"""

import torch
import torch.nn.functional as F

from .dataset import IGNORE

MEMBRANE = 1
_SMOOTH = 1.0  # keeps Dice defined (and 1) on batches with no membrane at all


def membrane_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(CE + (1 - soft Dice)) / 2 for logits (n, classes, H, W) and labels (n, H, W)."""
    cross_entropy = F.cross_entropy(logits, labels, ignore_index=IGNORE)
    valid = (labels != IGNORE).float()
    membrane = torch.softmax(logits, dim=1)[:, MEMBRANE] * valid
    target = (labels == MEMBRANE).float()
    dice = (2 * (membrane * target).sum() + _SMOOTH) / (membrane.sum() + target.sum() + _SMOOTH)
    return (cross_entropy + 1 - dice) / 2


def hard_dice(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Dice of the arg-max membrane prediction against the labels, over valid pixels."""
    valid = labels != IGNORE
    predicted = (logits.argmax(dim=1) == MEMBRANE) & valid
    target = labels == MEMBRANE
    return float((2 * (predicted & target).sum() + _SMOOTH) / (predicted.sum() + target.sum() + _SMOOTH))
