"""Download model weights into the engine image's weights folder (run by the Dockerfile at build time).

The folder has the layout the engine finds without network: a Hugging Face cache under $HF_HOME (a
backbone is then named by its hub id) and CellPose models under $CELLPOSE_LOCAL_MODELS_PATH.

Usage: python bake-weights.py [--sd-model HUB_ID] [--cellpose-model NAME]
"""

import argparse
import os
import sys
from pathlib import Path

# The files of a Stable Diffusion repository that the engine loads: the fp32 safetensors of each component
# and their configurations (not the multi-GB single checkpoints, fp16 variants or .bin duplicates).
SD_FILES = (
    "scheduler/scheduler_config.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "tokenizer/*",
)


def bakeStableDiffusion(modelId):
    from huggingface_hub import snapshot_download

    snapshot = Path(snapshot_download(modelId, allow_patterns=list(SD_FILES)))
    missing = [pattern for pattern in SD_FILES if not any(snapshot.glob(pattern))]
    if missing:
        sys.exit(f"{modelId} has no {', '.join(missing)}: it is not a Stable Diffusion model in diffusers layout "
                 f"with safetensors weights.")
    print(f"Baked {modelId} into {os.environ['HF_HOME']}")


def bakeCellpose(name):
    from cellpose import models

    if name not in models.MODEL_NAMES:
        sys.exit(f"'{name}' is not a CellPose model name ({', '.join(models.MODEL_NAMES)}).")
    print(f"Baked CellPose model {name} at {models.model_path(name)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sd-model", default="", help="hub id of a Stable Diffusion model, e.g. "
                                                       "CompVis/stable-diffusion-v1-4")
    parser.add_argument("--cellpose-model", default="", help="CellPose model name, e.g. cyto3")
    args = parser.parse_args()
    if args.sd_model:
        bakeStableDiffusion(args.sd_model)
    if args.cellpose_model:
        bakeCellpose(args.cellpose_model)


if __name__ == "__main__":
    main()
