"""Capturing the row-softmaxed self-attention P = softmax(Q K^T / sqrt(d)) of every self-attention layer.

diffusers' classic ``AttnProcessor`` computes P explicitly through ``Attention.get_attention_scores``
(the fused SDPA processors never materialise it). The capture installs that processor on every
self-attention module (cross-attention to the text is skipped) and wraps the module's
``get_attention_scores`` so each call also records P, so the forward computation stays diffusers' own.
"""

import logging
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, List

import torch

log = logging.getLogger("cryodiffseg")


@dataclass
class LayerAttention:
    """Attention of one layer for one image: ``probs`` is (heads, N, N), or (1, N, N) when head-averaged."""

    name: str
    probs: torch.Tensor

    @property
    def grid(self) -> int:
        return math.isqrt(self.probs.shape[-1])

    @property
    def in_down_path(self) -> bool:
        return self.name.startswith("down_blocks")


# One forward pass of one image: layer name -> attention, in forward order.
AttentionSample = Dict[str, LayerAttention]


def self_attention_modules(unet) -> "OrderedDict[str, torch.nn.Module]":
    """The UNet's self-attention modules (Attention without a cross-attention input), in module order."""
    from diffusers.models.attention_processor import Attention

    return OrderedDict(
        (name, module)
        for name, module in unet.named_modules()
        if isinstance(module, Attention) and not module.is_cross_attention
    )


@dataclass
class AttentionCapture:
    """Context manager recording the self-attention of every forward pass of ``unet``.

    ``keep_heads=False`` averages the heads as soon as P is computed, which divides memory by the
    number of heads (SD 1.x: 64 MB instead of 512 MB per 64x64 layer) when only the head mean is needed.
    """

    unet: torch.nn.Module
    keep_heads: bool = True

    def __enter__(self):
        from diffusers.models.attention_processor import AttnProcessor

        self._modules = self_attention_modules(self.unet)
        if not self._modules:
            raise ValueError("The backbone UNet has no self-attention layers to capture.")
        self._saved = {name: m.processor for name, m in self._modules.items()}
        self._pass: List[LayerAttention] = []
        for name, module in self._modules.items():
            module.set_processor(AttnProcessor())
            module.get_attention_scores = self._recorder(name, module)
        return self

    def __exit__(self, *exc):
        for name, module in self._modules.items():
            del module.get_attention_scores  # back to the class method
            module.set_processor(self._saved[name])
        return False

    @property
    def layer_names(self) -> List[str]:
        return list(self._modules)

    def _recorder(self, name, module):
        compute = type(module).get_attention_scores.__get__(module)

        def record(query, key, attention_mask=None):
            probs = compute(query, key, attention_mask)
            heads = module.heads
            per_image = probs.detach().float().reshape(-1, heads, *probs.shape[1:])
            if not self.keep_heads:
                per_image = per_image.mean(dim=1, keepdim=True)
            self._pass.append((name, per_image))
            return probs

        return record

    def collect(self) -> List[AttentionSample]:
        """Split what the last forward pass recorded into one AttentionSample per image of the batch."""
        if not self._pass:
            return []
        batch = self._pass[0][1].shape[0]
        samples = [OrderedDict() for _ in range(batch)]
        for name, probs in self._pass:
            for i in range(batch):
                samples[i][name] = LayerAttention(name, probs[i].cpu())
        self._pass = []
        return samples
