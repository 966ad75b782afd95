import json

import pytest
import torch

from cryodiffseg.checkpoints import load_checkpoint, save_checkpoint
from cryodiffseg.errors import CryoDiffSegError


def test_round_trip_keeps_weights_and_record(tmp_path):
    net = torch.nn.Conv2d(1, 2, 3)
    save_checkpoint(tmp_path / "m", net.state_dict(), {"kind": "demo", "voxel_size_A": 13.48})
    state, record = load_checkpoint(tmp_path / "m", "demo")
    other = torch.nn.Conv2d(1, 2, 3)
    other.load_state_dict(state)
    torch.testing.assert_close(other.weight, net.weight)
    assert record == {"kind": "demo", "voxel_size_A": 13.48}


def test_wrong_kind_missing_and_corrupt(tmp_path):
    save_checkpoint(tmp_path / "m", {"w": torch.zeros(2)}, {"kind": "demo"})
    with pytest.raises(CryoDiffSegError, match="not a 'other' model"):
        load_checkpoint(tmp_path / "m", "other")
    with pytest.raises(CryoDiffSegError, match="not found"):
        load_checkpoint(tmp_path / "nothing", "demo")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CryoDiffSegError, match="needs model.safetensors"):
        load_checkpoint(tmp_path / "empty", "demo")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"garbage" * 3)
    with pytest.raises(CryoDiffSegError, match="Cannot read"):
        load_checkpoint(tmp_path / "m", "demo")
    with pytest.raises(ValueError):
        save_checkpoint(tmp_path / "x", {}, {"no": "kind"})
    assert json.loads((tmp_path / "m" / "model.json").read_text())["kind"] == "demo"


def test_non_finite_weights_are_never_saved_or_loaded(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(CryoDiffSegError, match="non-finite"):
        save_checkpoint(tmp_path / "nan", {"w": torch.tensor([1.0, float("nan")])}, {"kind": "demo"})
    assert not (tmp_path / "nan" / "model.safetensors").exists()
    save_checkpoint(tmp_path / "m", {"w": torch.zeros(2), "steps": torch.tensor([3])}, {"kind": "demo"})
    save_file({"w": torch.tensor([float("inf"), 0.0]), "steps": torch.tensor([3])}, str(tmp_path / "m" / "model.safetensors"))
    with pytest.raises(CryoDiffSegError, match="non-finite weights"):
        load_checkpoint(tmp_path / "m", "demo")
