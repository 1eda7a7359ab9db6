"""RunConfig precedence: protocol defaults < model plugin defaults < config file < flags."""

from __future__ import annotations

import pytest

from ent_harness.config import RunConfig, read_config_file, resolve_run_config
from ent_harness.errors import EntError


def test_protocol_defaults_are_the_papers() -> None:
    config = RunConfig(model="m")
    assert (config.lora_r, config.lora_alpha, config.lora_dropout) == (64, 128, 0.05)
    assert (config.steps, config.diag_every, config.companion_share, config.lr) == (5000, 500, 0.5, 1e-4)


def test_precedence(tmp_path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[run]\nsteps = 30\nlr = 0.002\ncompanion = "math"\n')
    config = resolve_run_config({"steps": 200, "diag_every": 50, "seq_len": 64}, read_config_file(path),
                                {"model": "tiny-qwen2", "steps": 40, "lr": None})
    assert config.steps == 40  # flag beats file
    assert config.lr == 0.002  # file beats model default / protocol
    assert config.diag_every == 50 and config.seq_len == 64  # model defaults beat protocol
    assert config.companion == "math"


def test_invalid_values_raise_user_errors() -> None:
    with pytest.raises(EntError):
        RunConfig(model="m", batch_size=0)
    with pytest.raises(EntError):
        RunConfig(model="m", quantize="int3")
