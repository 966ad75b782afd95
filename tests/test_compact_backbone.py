import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cryodiffseg.compact.architecture import CompactUNetConfig, build_scheduler
from cryodiffseg.compact.data import CropSampler, SyntheticVariety, synthetic_config
from cryodiffseg.compact.train import PIXEL_UNSHUFFLE, BackboneTrainingConfig, train_backbone
from cryodiffseg.errors import CryoDiffSegError
from cryodiffseg.features.attention import self_attention_modules
from cryodiffseg.features.backbone import SHIPPED, BackboneConfig, load_backbone

TINY = CompactUNetConfig(sample_size=16, block_out_channels=(16, 32, 32), attention_head_dim=16, norm_num_groups=8)


def tiny_training(**overrides):
    settings = dict(
        iterations=40,
        batch_size=4,
        learning_rate=2e-3,
        warmup=5,
        checkpoint_every=20,
        synthetic=SyntheticVariety(volumes=1, shape=(24, 64, 64)),
        architecture=TINY,
        device="cpu",
    )
    settings.update(overrides)
    return BackboneTrainingConfig(**settings)


def fixed_batch_loss(unet, seed=0):
    """Denoising loss on a fixed batch of generated crops, noise and timesteps."""
    variety = SyntheticVariety(volumes=1, shape=(24, 64, 64))
    from cryodiffseg.compact.data import synthetic_slices

    crops = CropSampler(synthetic_slices(variety, seed=99), [], 32, 0.0, seed=seed).batch(8)
    clean = F.pixel_unshuffle(torch.from_numpy(crops), PIXEL_UNSHUFFLE)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(clean.shape, generator=generator)
    timesteps = torch.randint(0, 1000, (8,), generator=generator)
    scheduler = build_scheduler()
    with torch.no_grad():
        return F.mse_loss(unet(scheduler.add_noise(clean, noise, timesteps), timesteps).sample, noise).item()


def test_short_training_reduces_the_denoising_loss(tmp_path):
    torch.manual_seed(0)
    before = fixed_batch_loss(TINY.build())
    out = train_backbone(tmp_path / "model", tiny_training())
    backbone = load_backbone(BackboneConfig(source=str(out), device="cpu"))
    after = fixed_batch_loss(backbone.unet)
    assert after < 0.7 * before
    recipe = json.loads((out / "recipe.json").read_text())
    assert recipe["config"]["iterations"] == 40 and len(recipe["history"]) == 2
    # the exported folder is a backbone: 32-px tiles folded to 16 x 16, attention captured unchanged
    assert backbone.input_size == 32 and backbone.pixel_unshuffle == 2
    assert backbone.encode(torch.rand(1, 1, 32, 32)).shape == (1, 4, 16, 16)


def test_training_resumes_where_it_stopped(tmp_path, caplog):
    train_backbone(tmp_path / "model", tiny_training(iterations=20, checkpoint_every=10))
    caplog.clear()
    train_backbone(tmp_path / "model", tiny_training(iterations=30, checkpoint_every=10))
    assert "Resuming backbone training at iteration 20 of 30" in caplog.text
    state = torch.load(tmp_path / "model" / "checkpoint" / "state.pt", weights_only=True)
    assert state["step"] == 30
    with pytest.raises(CryoDiffSegError, match="other settings"):
        train_backbone(tmp_path / "model", tiny_training(iterations=40, learning_rate=1e-2))


def test_synthetic_variety_is_deterministic_and_varied():
    variety = SyntheticVariety()
    a, b = synthetic_config(variety, 0, seed=0), synthetic_config(variety, 1, seed=0)
    assert a == synthetic_config(variety, 0, seed=0)
    assert (a.snr, a.voxel_size_A, a.defocus_um) != (b.snr, b.voxel_size_A, b.defocus_um)
    snrs = [synthetic_config(variety, i, seed=0).snr for i in range(24)]
    assert min(snrs) >= 0.05 and max(snrs) <= 1.0 and max(snrs) / min(snrs) > 4


def test_crops_are_scaled_and_augmented():
    image = np.arange(64 * 64, dtype=np.float64).reshape(64, 64) % 256
    crops = CropSampler(np.stack([image.astype(np.uint8)]), [], 32, 0.0, seed=0).batch(16)
    assert crops.shape == (16, 1, 32, 32) and crops.min() >= -1 and crops.max() <= 1


def test_architecture_has_attention_at_two_resolutions():
    unet = CompactUNetConfig().build()
    modules = self_attention_modules(unet)
    assert len(modules) == 7
    clean = torch.zeros(1, 4, 64, 64)
    from cryodiffseg.features.attention import AttentionCapture

    with AttentionCapture(unet, keep_heads=False) as capture:
        with torch.no_grad():
            unet(clean, torch.tensor([10]))
        (sample,) = capture.collect()
    assert sorted({layer.grid for layer in sample.values()}) == [16, 32]


def test_shipped_backbone_loads_offline_from_the_package(monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("the shipped backbone must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    backbone = load_backbone(BackboneConfig(source=SHIPPED, device="cpu"))
    assert backbone.name.startswith("compact") and backbone.input_size == 128 and backbone.vae is None
    from cryodiffseg.features.attention import AttentionCapture

    clean = backbone.encode(torch.rand(1, 1, 128, 128))
    with AttentionCapture(backbone.unet, keep_heads=True) as capture:
        backbone.noisy_pass(clean, torch.tensor([30]), torch.Generator().manual_seed(0))
        (sample,) = capture.collect()
    assert len(sample) == 7
    assert {name: layer.grid for name, layer in sample.items() if layer.grid == 32}  # 32 x 32 tokens
    assert sorted({layer.grid for layer in sample.values()}) == [16, 32]
