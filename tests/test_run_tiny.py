"""End to end on the embedded tiny models: a whole run, and adapters that reload with PEFT."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import run_ent
from ent_harness.plugin_manager import get_registry


@pytest.mark.slow
def test_tiny_run_writes_a_complete_run_directory(tmp_path) -> None:
    out = tmp_path / "run"
    result = run_ent("run", "--model", "tiny-qwen2", "--companion", "nl", "--steps", "24", "--diag-every", "12",
                     "--seq-len", "64", "--batch-size", "2", "--seed", "3", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "finished"
    assert record["model"] == "tiny-qwen2" and record["companion"] == "nl" and record["seed"] == 3
    assert record["quantization"] in ("nf4", "none")
    assert record["config"]["lora_r"] == 64 and record["config"]["lora_alpha"] == 128
    assert len(record["lora_targets"]) == 7
    assert {"torch", "transformers", "peft"} <= set(record["versions"])
    lines = (out / "diagnostics.jsonl").read_text().splitlines()
    diagnostics = [json.loads(line) for line in lines]
    assert [d["step"] for d in diagnostics] == [0, 12, 24]
    for d in diagnostics:
        assert isinstance(d["ei"], float) and math.isfinite(d["ei"])
        for key in ("v_purity", "spectrum", "damage", "accuracy", "margin", "ei_null", "cka_to_base", "flags"):
            assert key in d
    assert diagnostics[0]["cka_to_base"] == pytest.approx(1.0)
    for step in (0, 12, 24):
        assert (out / "adapters" / f"step-{step}" / "adapter_model.safetensors").is_file()
    report = (out / "report.md").read_text()
    assert "EI trajectory" in report and "ei_trajectory.png" in report
    assert (out / "ei_trajectory.png").stat().st_size > 5000

    # `ent diagnose` on the saved adapter reproduces the run's own record of that step
    again = run_ent("diagnose", "--model", "tiny-qwen2", "--adapter", str(out / "adapters" / "step-24"), "--json")
    assert again.returncode == 0, again.stderr[-3000:]
    rediagnosed = json.loads(again.stdout)
    recorded = diagnostics[-1]
    for key in ("ei", "ei_sd", "v_purity", "margin_normalized", "ei_null", "cross_damage"):
        assert rediagnosed[key] == pytest.approx(recorded[key], rel=1e-6, abs=1e-9), key
    np.testing.assert_allclose(rediagnosed["spectrum"], recorded["spectrum"], rtol=1e-6)
    assert rediagnosed["accuracy"] == recorded["accuracy"]


@pytest.mark.slow
@pytest.mark.parametrize("model_name", ["tiny-qwen2", "tiny-llama", "tiny-mistral"])
def test_saved_adapter_reloads_with_peft_and_gives_the_same_activations(tmp_path, model_name) -> None:
    import torch
    from ent_harness.modeling import attach_lora, load_adapter, load_model, terminal_activations
    from ent_harness.rundir import prepare_run_dir, save_adapter

    registry = get_registry()
    spec = registry.get("model", model_name)
    loaded = load_model(spec, registry)
    model = attach_lora(loaded, r=8, alpha=16, dropout=0.0, targets=None)
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    ids = torch.randint(0, 250, (2, 32), device=loaded.device)
    for _ in range(3):  # move the adapter away from its zero-initialised B
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    texts = ["def add(a, b):\n    return a + b", "The river was quiet that morning.", "Solve 2x + 3 = 7."]
    before = terminal_activations(loaded, texts)
    prepare_run_dir(tmp_path, force=False)
    folder = save_adapter(model, tmp_path, step=3)

    fresh = load_model(spec, registry)
    base_only = terminal_activations(fresh, texts)
    load_adapter(fresh, folder)
    after = terminal_activations(fresh, texts)
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-6)
    assert np.abs(base_only - before).max() > 1e-4  # the adapter really changed the activations
