"""The same end-to-end path on a CUDA GPU (skipped without one): 4-bit NF4 through bitsandbytes, bf16 compute."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_ent

pytestmark = pytest.mark.gpu


def test_tiny_run_on_the_gpu_uses_nf4(tmp_path) -> None:
    out = tmp_path / "run"
    result = run_ent("run", "--model", "tiny-llama", "--companion", "math", "--steps", "20", "--diag-every", "10",
                     "--device", "cuda", "--quantize", "nf4", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((out / "run.json").read_text())
    assert (record["status"], record["quantization"], record["device"]) == ("finished", "nf4", "cuda")
    steps = [json.loads(line)["step"] for line in (out / "diagnostics.jsonl").read_text().splitlines()]
    assert steps == [0, 10, 20]


def test_adapter_reload_on_the_gpu(tmp_path) -> None:
    import torch
    from ent_harness.modeling import attach_lora, load_adapter, load_model, terminal_activations
    from ent_harness.plugin_manager import get_registry
    from ent_harness.rundir import prepare_run_dir, save_adapter

    registry = get_registry()
    spec = registry.get("model", "tiny-qwen2")
    loaded = load_model(spec, registry, quantize="nf4", device="cuda")
    model = attach_lora(loaded, r=8, alpha=16, dropout=0.0, targets=None)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    ids = torch.randint(0, 250, (2, 32), device="cuda")
    for _ in range(3):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    texts = ["def f(x): return x * 2", "A calm walk by the sea."]
    before = terminal_activations(loaded, texts)
    prepare_run_dir(tmp_path, force=False)
    folder = save_adapter(model, tmp_path, step=3)
    fresh = load_model(spec, registry, quantize="nf4", device="cuda")
    load_adapter(fresh, folder)
    np.testing.assert_allclose(terminal_activations(fresh, texts), before, rtol=1e-4, atol=1e-4)
