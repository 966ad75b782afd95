import numpy as np
import pytest
import torch

from cryodiffseg.errors import CryoDiffSegError
from cryodiffseg.features.attention import AttentionCapture, self_attention_modules
from cryodiffseg.features.backbone import BackboneConfig, load_backbone
from cryodiffseg.features.extract import FeatureConfig, default_max_timestep, tile_attention

from tiny_models import build_tiny_stable_diffusion, save_as_original_checkpoint


@pytest.fixture(scope="module")
def backbone(tiny_sd):
    return load_backbone(BackboneConfig(source=str(tiny_sd), device="cpu"))


def test_tiny_folder_loads_through_the_real_loader(backbone):
    assert backbone.input_size == 64 and backbone.latent_scale == 2
    assert backbone.vae is not None and backbone.text_embedding is not None
    assert backbone.text_embedding.shape == (1, 8, 16)  # empty prompt, padded to the tokenizer's length
    assert backbone.dtype == torch.float32
    latents = backbone.encode(torch.rand(2, 1, 64, 64), torch.Generator().manual_seed(0))
    assert latents.shape == (2, 4, 32, 32)


def test_capture_records_self_attention_only(backbone):
    names = list(self_attention_modules(backbone.unet))
    assert names and all(n.endswith("attn1") for n in names)  # attn2 (text cross-attention) excluded
    clean = backbone.encode(torch.rand(1, 1, 64, 64))
    with AttentionCapture(backbone.unet, keep_heads=True) as capture:
        backbone.noisy_pass(clean, torch.tensor([20]), torch.Generator().manual_seed(1))
        (sample,) = capture.collect()
    assert sorted(sample) == sorted(names)
    for layer in sample.values():
        heads, n, m = layer.probs.shape
        assert heads == 4 and n == m == layer.grid**2  # SD configs name the head count attention_head_dim
        torch.testing.assert_close(layer.probs.sum(-1), torch.ones(heads, n))  # row-softmaxed
        assert (layer.probs >= 0).all()
    assert {layer.grid for layer in sample.values()} == {32, 16}  # down/up at 32x32, mid at 16x16
    # the processors are restored: the UNet computes the same output as before the capture
    out_after = backbone.noisy_pass(clean, torch.tensor([20]), torch.Generator().manual_seed(1))
    with AttentionCapture(backbone.unet):
        out_during = backbone.noisy_pass(clean, torch.tensor([20]), torch.Generator().manual_seed(1))
    torch.testing.assert_close(out_after, out_during, atol=1e-5, rtol=1e-4)


def test_stable_diffusion_2_layout_loads_and_captures_per_block_heads(tmp_path):
    folder = build_tiny_stable_diffusion(tmp_path / "sd2", version=2)
    sd2 = load_backbone(BackboneConfig(source=str(folder), device="cpu"))
    assert sd2.unet.config.use_linear_projection and sd2.scheduler.config.prediction_type == "v_prediction"
    clean = sd2.encode(torch.rand(1, 1, 64, 64), torch.Generator().manual_seed(0))
    with AttentionCapture(sd2.unet, keep_heads=True) as capture:
        sd2.noisy_pass(clean, torch.tensor([20]), torch.Generator().manual_seed(1))
        (sample,) = capture.collect()
    heads = {name: layer.probs.shape[0] for name, layer in sample.items()}
    assert heads == {
        "down_blocks.0.attentions.0.transformer_blocks.0.attn1": 2,
        "down_blocks.1.attentions.0.transformer_blocks.0.attn1": 4,
        "mid_block.attentions.0.transformer_blocks.0.attn1": 4,
        "up_blocks.0.attentions.0.transformer_blocks.0.attn1": 4,
        "up_blocks.0.attentions.1.transformer_blocks.0.attn1": 4,
        "up_blocks.1.attentions.0.transformer_blocks.0.attn1": 2,
        "up_blocks.1.attentions.1.transformer_blocks.0.attn1": 2,
    }
    for layer in sample.values():
        torch.testing.assert_close(layer.probs.sum(-1), torch.ones(layer.probs.shape[:2]))


def test_head_average_equals_mean_of_kept_heads(backbone):
    tiles = (np.random.default_rng(0).random((2, 64, 64)) * 255).astype(np.uint8)
    config = FeatureConfig(num_samples=2, batch_size=2, seed=3)
    kept = list(tile_attention(backbone, tiles, 1.0, config, keep_heads=True))
    averaged = list(tile_attention(backbone, tiles, 1.0, config, keep_heads=False))
    assert len(kept) == 2 and len(kept[0]) == 2
    for name, layer in kept[1][1].items():
        torch.testing.assert_close(layer.probs.mean(0, keepdim=True), averaged[1][1][name].probs)


def test_attention_is_captured_one_batch_at_a_time(backbone):
    """A slice's attention is never held whole: the next batch runs only once the previous is consumed."""
    calls = []
    hook = backbone.unet.register_forward_hook(lambda *_: calls.append(1))
    try:
        tiles = (np.random.default_rng(0).random((3, 64, 64)) * 255).astype(np.uint8)
        stream = tile_attention(backbone, tiles, 1.0, FeatureConfig(num_samples=2, batch_size=1), keep_heads=False)
        assert len(next(stream)) == 2 and len(calls) == 2  # one tile, two noisy passes
        assert len(list(stream)) == 2 and len(calls) == 6
    finally:
        hook.remove()


def test_max_timestep_follows_voxel_size():
    assert default_max_timestep(1.348) == 50  # the paper's S. pombe data
    assert default_max_timestep(1.0) == 68
    assert default_max_timestep(0.01) == 999


def test_offline_hub_id_says_how_to_use_local_weights(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CryoDiffSegError, match="--backbone DIR"):
        load_backbone(BackboneConfig(source="CompVis/stable-diffusion-v1-4", device="cpu"))


def test_bad_backbone_paths(tmp_path):
    with pytest.raises(CryoDiffSegError, match="neither an existing"):
        load_backbone(BackboneConfig(source=str(tmp_path / "missing" / "model"), device="cpu"))
    with pytest.raises(CryoDiffSegError, match="no unet/config.json"):
        load_backbone(BackboneConfig(source=str(tmp_path), device="cpu"))
    (tmp_path / "weights.txt").write_text("x")
    with pytest.raises(CryoDiffSegError, match="not a checkpoint"):
        load_backbone(BackboneConfig(source=str(tmp_path / "weights.txt"), device="cpu"))
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CryoDiffSegError, match="Cannot load the checkpoint"):
        load_backbone(BackboneConfig(source=str(tmp_path / "broken.safetensors"), device="cpu"))


def test_single_original_checkpoint_loads_the_same_model_as_its_folder(backbone, tiny_sd, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    checkpoint = save_as_original_checkpoint(tiny_sd, tmp_path / "tiny-sd.safetensors")
    # configs from a folder of the same family but other weights: every weight must come from the file
    other = build_tiny_stable_diffusion(tmp_path / "other", seed=1)
    single = load_backbone(BackboneConfig(source=str(checkpoint), config=str(other), device="cpu"))
    for module, reference in ((single.unet, backbone.unet), (single.vae, backbone.vae)):
        loaded, expected = module.state_dict(), reference.state_dict()
        assert loaded.keys() == expected.keys()
        for key, tensor in expected.items():
            torch.testing.assert_close(loaded[key].reshape(tensor.shape), tensor, rtol=0, atol=0, msg=key)
    torch.testing.assert_close(single.text_embedding, backbone.text_embedding, rtol=0, atol=0)
    assert single.input_size == backbone.input_size == 64
    clean = backbone.encode(torch.rand(1, 1, 64, 64), torch.Generator().manual_seed(0))
    with AttentionCapture(single.unet) as capture:
        single.noisy_pass(clean, torch.tensor([20]), torch.Generator().manual_seed(1))
        (sample,) = capture.collect()
    assert sorted(sample) == sorted(self_attention_modules(backbone.unet))


def test_single_checkpoint_offline_without_configs_says_what_to_pass(tiny_sd, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    checkpoint = save_as_original_checkpoint(tiny_sd, tmp_path / "tiny-sd.safetensors")
    with pytest.raises(CryoDiffSegError, match="--backbone-config"):
        load_backbone(BackboneConfig(source=str(checkpoint), device="cpu"))


def test_unknown_device_and_missing_gpu():
    with pytest.raises(CryoDiffSegError, match="Unknown device"):
        load_backbone(BackboneConfig(source="x/y", device="tpu9"))
    if not torch.cuda.is_available():
        with pytest.raises(CryoDiffSegError, match="no CUDA GPU"):
            load_backbone(BackboneConfig(source="x/y", device="cuda"))
