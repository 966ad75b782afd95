"""Loading a diffusion backbone and running one denoising pass on a noisy input.

Two families share this code:
- Stable Diffusion 1.x/2.x (latent diffusion): VAE + UNet2DConditionModel + CLIP text encoder, loaded from
  a hub id, a local diffusers folder, or a single checkpoint file (.safetensors/.ckpt).
- Pixel-space models (a UNet2DModel with self-attention, no VAE, no text), e.g. a compact model trained on
  tomogram slices.
The text encoder is only used once, for the empty-prompt embedding, and then released.
"""

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import torch

from ..errors import CryoDiffSegError, library_reason

log = logging.getLogger("cryodiffseg")

PAPER_HUB_ID = "CompVis/stable-diffusion-v1-4"  # the paper's backbone
# The compact cryo-ET backbone inside this package: offline and fast on a CPU.
SHIPPED = "compact"
# The default: the paper's backbone when its weights are already on this machine, otherwise the shipped one.
AUTO = "auto"
# What a complete Stable Diffusion folder holds, in the hub's cache, before "auto" counts it as present.
_PAPER_FILES = ("model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json",
                "tokenizer/vocab.json", "scheduler/scheduler_config.json")
_UNET_WEIGHTS = ("unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.bin")
SHIPPED_PATH = Path(__file__).resolve().parent.parent / "compact" / "shipped"
SINGLE_FILE_SUFFIXES = {".safetensors", ".ckpt", ".pt", ".pth", ".bin"}


@dataclass
class BackboneConfig:
    """Where the weights come from and where they run.

    ``source``: "auto" (the default: the paper's Stable Diffusion v1.4 when its weights are in the local
    Hugging Face cache, otherwise the shipped model; ``resolve_source`` says which), a hub id, "compact" (the
    model shipped in this package), a diffusers folder, or a single checkpoint file. ``config`` (single files only): a
    diffusers folder or hub id giving the component configs, needed offline. ``device``: "auto" picks CUDA
    when present. ``dtype``: "auto" is float32 on CPU (bfloat16 is far slower on CPUs without AMX) and
    float16 on GPU.
    """

    source: str = AUTO
    config: Optional[str] = None
    device: str = "auto"
    dtype: str = "auto"


def resolve_source(source: str) -> Tuple[str, str]:
    """(the backbone to load, why) for a configured source; only "auto" is decided here."""
    if source != AUTO:
        return source, "as given"
    if _cached_on_this_machine(PAPER_HUB_ID):
        return PAPER_HUB_ID, f"auto: {PAPER_HUB_ID} is in the local Hugging Face cache"
    return SHIPPED, f"auto: {PAPER_HUB_ID} is not in the local Hugging Face cache, so the shipped compact model runs"


def _cached_on_this_machine(repo_id: str) -> bool:
    """Whether every file a Stable Diffusion folder needs is in the hub cache (nothing is downloaded)."""
    from huggingface_hub import try_to_load_from_cache

    def cached(name: str) -> bool:
        return isinstance(try_to_load_from_cache(repo_id, name), str)

    return all(cached(name) for name in _PAPER_FILES) and any(cached(name) for name in _UNET_WEIGHTS)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise CryoDiffSegError(f"Unknown device '{name}': use auto, cpu, cuda or cuda:N.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CryoDiffSegError(f"Device '{name}' was requested but no CUDA GPU is available: use --device cpu.")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    dtypes = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if name not in dtypes:
        raise CryoDiffSegError(f"Unknown dtype '{name}': use auto, float32, float16 or bfloat16.")
    return dtypes[name]


class Backbone:
    """A diffusion UNet ready for single noisy forward passes, with its encoder and scheduler."""

    def __init__(self, unet, scheduler, device, dtype, vae=None, text_embedding=None, name="", pixel_unshuffle=1):
        self.unet = unet.to(device=device).eval()  # loaded in ``dtype`` already
        self.vae = vae.to(device=device).eval() if vae is not None else None
        self.scheduler = scheduler
        self.text_embedding = text_embedding.to(device=device, dtype=dtype) if text_embedding is not None else None
        self.device = device
        self.dtype = dtype
        self.name = name
        self.pixel_unshuffle = pixel_unshuffle  # pixel models may fold r x r pixel blocks into channels

    @property
    def latent_scale(self) -> int:
        """Input pixels per latent pixel (8 for Stable Diffusion, 1 in pixel space)."""
        if self.vae is None:
            return self.pixel_unshuffle
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def input_size(self) -> int:
        """Side of the square input tile the model was trained on (512 for SD 1.x)."""
        return int(self.unet.config.sample_size) * self.latent_scale

    @property
    def size_multiple(self) -> int:
        """Tile sides must be multiples of this: the encoder's scale times one halving per UNet level."""
        return self.latent_scale * 2 ** (len(self.unet.config.block_out_channels) - 1)

    def attention_grid(self, tile_size: int) -> int:
        """Side of the finest self-attention grid of a tile (the eigen-maps' resolution)."""
        kinds = list(self.unet.config.down_block_types)
        levels = [i for i, kind in enumerate(kinds) if "Attn" in kind] or [len(kinds) - 1]
        return tile_size // self.latent_scale // 2 ** levels[0]

    @property
    def image_channels(self) -> int:
        if self.vae is not None:
            return int(self.vae.config.in_channels)
        return int(self.unet.config.in_channels) // self.pixel_unshuffle**2

    @property
    def num_train_timesteps(self) -> int:
        return int(self.scheduler.config.num_train_timesteps)

    @torch.no_grad()
    def encode(self, patches: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Grey patches (B, 1, H, W) in [0, 1] -> model input (latents for SD, pixels scaled to [-1, 1])."""
        x = patches.to(device=self.device, dtype=self.dtype) * 2 - 1
        x = x.expand(-1, self.image_channels, -1, -1)
        if self.vae is None:
            return torch.nn.functional.pixel_unshuffle(x, self.pixel_unshuffle)
        posterior = self.vae.encode(x).latent_dist
        return posterior.sample(generator) * self.vae.config.scaling_factor

    @torch.no_grad()
    def noisy_pass(self, clean: torch.Tensor, timesteps: torch.Tensor, generator: Optional[torch.Generator] = None):
        """Add noise at ``timesteps`` (one per item) and run the UNet once; attention hooks see this pass."""
        noise = torch.randn(clean.shape, generator=generator, device=clean.device, dtype=clean.dtype)
        timesteps = timesteps.to(clean.device)
        noisy = self.scheduler.add_noise(clean, noise, timesteps)
        if self.text_embedding is not None:
            cond = self.text_embedding.expand(clean.shape[0], -1, -1)
            return self.unet(noisy, timesteps, encoder_hidden_states=cond).sample
        return self.unet(noisy, timesteps).sample


def load_backbone(config: BackboneConfig) -> Backbone:
    """Load the backbone named by ``config.source``; a clear error for every way this can fail."""
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    source, _ = resolve_source(str(config.source))
    path = Path(source).expanduser()
    if source == SHIPPED:
        if not (SHIPPED_PATH / "unet" / "config.json").is_file():
            raise CryoDiffSegError(f"The shipped backbone is missing from {SHIPPED_PATH}: reinstall cryodiffseg.")
        backbone = _load_folder(str(SHIPPED_PATH), device, dtype, local_only=True, name=f"{SHIPPED} (shipped)")
    elif path.is_file():
        if path.suffix.lower() not in SINGLE_FILE_SUFFIXES:
            raise CryoDiffSegError(f"Backbone file {path} is not a checkpoint (.safetensors or .ckpt).")
        backbone = _load_single_file(path, config.config, device, dtype)
    elif path.is_dir():
        backbone = _load_folder(str(path), device, dtype, local_only=True)
    elif _is_hub_id(source):
        backbone = _load_folder(source, device, dtype, local_only=_hub_offline())
    else:
        raise CryoDiffSegError(f"Backbone {source} is neither an existing folder or file nor a hub id (owner/name).")
    log.info("Backbone %s on %s (%s): %d-px tiles", backbone.name, device, str(dtype).replace("torch.", ""), backbone.input_size)
    return backbone


def _is_hub_id(source: str) -> bool:
    parts = source.split("/")
    return len(parts) == 2 and all(parts) and not source.startswith((".", "~"))


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes"}


def _offline_help(source: str) -> str:
    return (
        f"Cannot load the backbone '{source}' from the Hugging Face hub (no network access, or not in the local "
        f"cache). On a machine with internet run `hf download {source} --local-dir DIR` (or take the model's "
        "single .safetensors checkpoint), copy it here and pass --backbone DIR (or the checkpoint file). "
        f"--backbone {SHIPPED} uses the model shipped with cryodiffseg instead (offline, fast on a CPU, weaker: "
        "see BENCHMARKS.md)."
    )


def _read_unet_class(source: str, local_only: bool) -> str:
    """The UNet's class name from its config, to choose between the two backbone families."""
    from huggingface_hub import hf_hub_download

    local = Path(source) / "unet" / "config.json"
    if not local.is_file():
        if Path(source).is_dir():
            raise CryoDiffSegError(f"{source} is not a diffusers model folder: it has no unet/config.json.")
        try:
            local = Path(hf_hub_download(source, "unet/config.json", local_files_only=local_only))
        except Exception:
            raise CryoDiffSegError(_offline_help(source)) from None
    return str(_json_object(local).get("_class_name", "UNet2DConditionModel"))


def _json_object(path: Path) -> dict:
    """A JSON object from a model's settings file; a damaged one is the user's to fix, in one line."""
    try:
        value = json.loads(path.read_text())
    except (ValueError, OSError):  # UnicodeDecodeError is a ValueError
        raise CryoDiffSegError(f"{path} is not readable JSON: the backbone folder is damaged.") from None
    if not isinstance(value, dict):
        raise CryoDiffSegError(f"{path} does not hold a JSON object: the backbone folder is damaged.")
    return value


def _load_folder(source: str, device, dtype, local_only: bool, name: str = "") -> Backbone:
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel, UNet2DModel

    unet_class = _read_unet_class(source, local_only)
    kwargs = dict(local_files_only=local_only, torch_dtype=dtype)
    try:
        scheduler = DDPMScheduler.from_pretrained(source, subfolder="scheduler", local_files_only=local_only)
        if unet_class == "UNet2DModel":
            unet = UNet2DModel.from_pretrained(source, subfolder="unet", **kwargs)
            settings = Path(source) / "cryodiffseg.json"
            unshuffle = _json_object(settings).get("pixel_unshuffle", 1) if settings.is_file() else 1
            if not isinstance(unshuffle, int) or unshuffle < 1:
                raise CryoDiffSegError(f"{settings} gives pixel_unshuffle {unshuffle!r}: a positive whole number is needed.")
            return Backbone(unet, scheduler, device, dtype, name=name or source, pixel_unshuffle=unshuffle)
        unet = UNet2DConditionModel.from_pretrained(source, subfolder="unet", **kwargs)
        vae = AutoencoderKL.from_pretrained(source, subfolder="vae", **kwargs)
        text_embedding = _empty_prompt_embedding(source, kwargs)
    except CryoDiffSegError:
        raise
    except (OSError, ValueError) as exc:
        if Path(source).is_dir():
            raise CryoDiffSegError(f"Cannot load the backbone from {source}: {library_reason(exc)}") from None
        raise CryoDiffSegError(_offline_help(source)) from None
    return Backbone(unet, scheduler, device, dtype, vae=vae, text_embedding=text_embedding, name=name or source)


@torch.no_grad()
def _empty_prompt_embedding(source: str, kwargs: dict) -> torch.Tensor:
    from transformers import CLIPTextModel, CLIPTokenizer

    local_only = kwargs["local_files_only"]
    tokenizer = CLIPTokenizer.from_pretrained(source, subfolder="tokenizer", local_files_only=local_only)
    text_encoder = CLIPTextModel.from_pretrained(source, subfolder="text_encoder", local_files_only=local_only).eval()
    tokens = tokenizer([""], padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt")
    return text_encoder(tokens.input_ids)[0]


def _load_single_file(path: Path, config: Optional[str], device, dtype) -> Backbone:
    from diffusers import DDPMScheduler, StableDiffusionPipeline

    local_only = _hub_offline() or (config is not None and Path(config).is_dir())
    try:
        pipe = StableDiffusionPipeline.from_single_file(
            str(path), config=config, local_files_only=local_only, torch_dtype=dtype, safety_checker=None
        )
    except Exception as exc:  # diffusers raises many types here; the user needs the one remedy
        raise CryoDiffSegError(
            f"Cannot load the checkpoint {path}: {library_reason(exc)}. Offline, a single checkpoint also needs its component "
            "configs: pass --backbone-config with a diffusers folder of the same model family."
        ) from None
    tokens = pipe.tokenizer([""], padding="max_length", max_length=pipe.tokenizer.model_max_length, return_tensors="pt")
    with torch.no_grad():
        text_embedding = pipe.text_encoder.to(device)(tokens.input_ids.to(device))[0]
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    return Backbone(pipe.unet, scheduler, device, dtype, vae=pipe.vae, text_embedding=text_embedding, name=str(path))
