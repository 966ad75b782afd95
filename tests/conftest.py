import logging
import os

# The hub must fail at once, not after retries: tests never download. Set before any HF import.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402

from tiny_models import build_tiny_stable_diffusion  # noqa: E402


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory):
    """A saved tiny Stable Diffusion folder (64-px tiles, 32x32 attention)."""
    return build_tiny_stable_diffusion(tmp_path_factory.mktemp("tiny_sd") / "model")


@pytest.fixture(autouse=True)
def _engine_logs(caplog):
    caplog.set_level(logging.INFO, logger="cryodiffseg")
