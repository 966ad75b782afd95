"""Untrained models the benchmark compares against or times: same architectures, random weights."""

import json
from pathlib import Path

import torch

from ..checkpoints import save_checkpoint
from ..compact.architecture import CompactUNetConfig, build_scheduler
from ..compact.train import PIXEL_UNSHUFFLE
from ..records import to_jsonable, write_json


def random_compact_backbone(folder: Path, seed: int = 0) -> Path:
    """The shipped backbone's architecture with freshly initialised weights (the 'no training' control)."""
    folder = Path(folder)
    if not (folder / "unet" / "config.json").is_file():
        torch.manual_seed(seed)
        CompactUNetConfig().build().save_pretrained(folder / "unet")
        build_scheduler().save_pretrained(folder / "scheduler")
        write_json(folder / "cryodiffseg.json", {"pixel_unshuffle": PIXEL_UNSHUFFLE})
    return folder


def random_sd_topology(folder: Path, seed: int = 0) -> Path:
    """Stable Diffusion 1.x's UNet, VAE and text-encoder sizes with random weights: timing only."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    if (folder / "unet" / "config.json").is_file():
        return folder
    torch.manual_seed(seed)
    UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8).save_pretrained(folder / "unet")
    AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=2,
        sample_size=512,
    ).save_pretrained(folder / "vae")
    tokenizer = folder / "tokenizer"
    tokenizer.mkdir(parents=True, exist_ok=True)
    (tokenizer / "vocab.json").write_text(json.dumps({"<|startoftext|>": 0, "<|endoftext|>": 1}))
    (tokenizer / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(tokenizer / "vocab.json"), str(tokenizer / "merges.txt"), model_max_length=77).save_pretrained(tokenizer)
    CLIPTextModel(CLIPTextConfig(vocab_size=2, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                 num_attention_heads=12, max_position_embeddings=77, bos_token_id=0, eos_token_id=1,
                                 pad_token_id=1)).save_pretrained(folder / "text_encoder")
    DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012).save_pretrained(folder / "scheduler")
    return folder


def random_membrane_model(folder: Path, voxel_size: float = 10.0, seed: int = 0) -> Path:
    """The reference membrane U-Net with random weights: segmentation speed and memory do not depend on them."""
    from ..segmentation import UNet2D, UNetConfig
    from ..segmentation.model import MODEL_KIND
    from ..segmentation.normalisation import NORMALISATION

    torch.manual_seed(seed)
    config = UNetConfig()
    record = {"kind": MODEL_KIND, "architecture": to_jsonable(config.__dict__), "normalisation": NORMALISATION,
              "voxel_size_A": voxel_size, "note": "random weights, for timing"}
    return save_checkpoint(folder, UNet2D(config).state_dict(), record)
