"""Tiny backbones built with the real diffusers/transformers classes, saved like a downloaded model.

Random weights: they exercise loading, attention capture and the pipeline's plumbing, never its quality.
"""

import json
import re
from pathlib import Path

import torch


def build_tiny_stable_diffusion(folder: Path, sample_size: int = 32, seed: int = 0, version: int = 1) -> Path:
    """A diffusers-layout SD folder: UNet2DConditionModel, AutoencoderKL, CLIP text model and tokenizer.

    ``version=2`` takes what distinguishes SD 2.x: linear projections into the transformer blocks, a head
    count per block, upcast attention and a v-prediction scheduler.
    """
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    torch.manual_seed(seed)
    sd2 = dict(
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        attention_head_dim=(2, 4),  # SD 2.x configs give the head count per block under this name
        use_linear_projection=True,
        upcast_attention=True,
    )
    sd1 = dict(down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
               attention_head_dim=4)
    UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(16, 32),
        cross_attention_dim=16,
        norm_num_groups=8,
        **(sd2 if version == 2 else sd1),
    ).save_pretrained(folder / "unet")
    AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16),
        latent_channels=4,
        norm_num_groups=8,
        sample_size=2 * sample_size,
    ).save_pretrained(folder / "vae")
    tokenizer_dir = folder / "tokenizer"
    tokenizer_dir.mkdir(parents=True, exist_ok=True)
    (tokenizer_dir / "vocab.json").write_text(json.dumps({"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2}))
    (tokenizer_dir / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(tokenizer_dir / "vocab.json"), str(tokenizer_dir / "merges.txt"), model_max_length=8).save_pretrained(tokenizer_dir)
    CLIPTextModel(
        CLIPTextConfig(
            vocab_size=3,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=8,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    ).save_pretrained(folder / "text_encoder")
    DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False, steps_offset=1,
                  prediction_type="v_prediction" if version == 2 else "epsilon").save_pretrained(folder / "scheduler")
    components = {
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "DDPMScheduler"],
        "safety_checker": [None, None],
        "feature_extractor": [None, None],
    }
    index = {"_class_name": "StableDiffusionPipeline", "requires_safety_checker": False, **components}
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    return folder


def save_as_original_checkpoint(folder: Path, path: Path) -> Path:
    """Write the SD folder from ``build_tiny_stable_diffusion`` as one original-layout (LDM) checkpoint.

    Single-file SD releases (e.g. v1-5-pruned-emaonly.safetensors) use the original repository's key names;
    this renames every weight the way diffusers' single-file loader expects to undo.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING
    from safetensors.torch import save_file
    from transformers import CLIPTextModel

    folder = Path(folder)
    unet = UNet2DConditionModel.from_pretrained(folder / "unet")
    vae = AutoencoderKL.from_pretrained(folder / "vae")
    text = CLIPTextModel.from_pretrained(folder / "text_encoder")
    state = {}
    per_block = unet.config.layers_per_block + 1
    unet_state = unet.state_dict()
    for key, tensor in unet_state.items():
        state["model.diffusion_model." + _ldm_unet_key(key, per_block, DIFFUSERS_TO_LDM_MAPPING["unet"]["layers"], unet_state)] = tensor
    levels = len(vae.config.up_block_types)
    for key, tensor in vae.state_dict().items():
        ldm_key = _ldm_vae_key(key, levels, DIFFUSERS_TO_LDM_MAPPING["vae"])
        if ".mid.attn_1." in ldm_key and tensor.ndim == 2:
            tensor = tensor[:, :, None, None]  # the original VAE's attention projections are 1x1 convolutions
        state["first_stage_model." + ldm_key] = tensor
    for key, tensor in text.state_dict().items():
        # original checkpoints name the text weights as transformers 4 did: text_model.<name>
        state["cond_stage_model.transformer.text_model." + key.removeprefix("text_model.")] = tensor
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return Path(path)


_RESNET_NAMES = [
    ("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"),
]


def _ldm_unet_key(key: str, per_block: int, renamed: dict, state: dict) -> str:
    """The original name of a diffusers UNet weight; ``renamed`` maps the weights renamed one to one."""
    if key in renamed:
        return renamed[key]
    block, kind, index, rest = re.match(r"(down_blocks\.\d+|up_blocks\.\d+|mid_block)\.(\w+)\.(\d+)\.(.*)", key).groups()
    index = int(index)
    if kind == "resnets":
        for new, old in _RESNET_NAMES:
            rest = re.sub(rf"^{new}\.", f"{old}.", rest)
    if block == "mid_block":
        return f"middle_block.{1 if kind == 'attentions' else 2 * index}.{rest}"
    number = int(block.split(".")[1])
    if block.startswith("down_blocks"):
        position = 1 + number * per_block + (per_block - 1 if kind == "downsamplers" else index)
        if kind == "downsamplers":
            return f"input_blocks.{position}.0.op.{rest.removeprefix('conv.')}"
        return f"input_blocks.{position}.{0 if kind == 'resnets' else 1}.{rest}"
    position = number * per_block + (per_block - 1 if kind == "upsamplers" else index)
    if kind == "upsamplers":
        has_attention = any(k.startswith(f"{block}.attentions.") for k in state)
        return f"output_blocks.{position}.{2 if has_attention else 1}.{rest}"
    return f"output_blocks.{position}.{0 if kind == 'resnets' else 1}.{rest}"


def _ldm_vae_key(key: str, levels: int, renamed: dict) -> str:
    """The original name of a diffusers VAE weight; ``renamed`` maps the weights renamed one to one."""
    if key in renamed:
        return renamed[key]
    key = key.replace("conv_shortcut", "nin_shortcut")
    key = re.sub(r"mid_block\.resnets\.(\d+)", lambda m: f"mid.block_{int(m.group(1)) + 1}", key)
    for new, old in [("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out")]:
        key = key.replace(f"mid_block.attentions.0.{new}.", f"mid.attn_1.{old}.")
    key = re.sub(r"encoder\.down_blocks\.(\d+)\.resnets", r"encoder.down.\1.block", key)
    key = re.sub(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0", r"encoder.down.\1.downsample", key)
    key = re.sub(r"decoder\.up_blocks\.(\d+)\.resnets", lambda m: f"decoder.up.{levels - 1 - int(m.group(1))}.block", key)
    return re.sub(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0", lambda m: f"decoder.up.{levels - 1 - int(m.group(1))}.upsample", key)


def install_in_hub_cache(folder: Path, cache: Path, repo_id: str) -> Path:
    """Put a model folder into a Hugging Face hub cache the way a download leaves it (snapshot + refs/main)."""
    import shutil

    revision = "0" * 40
    repo = Path(cache) / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(folder, repo / "snapshots" / revision)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    return repo
