"""The same end-to-end path on a CUDA GPU (skipped without one): 4-bit NF4 through bitsandbytes, bf16 compute."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_ent
from ent_harness.trainer import TORCH_ADAMW_NAMES

pytestmark = pytest.mark.gpu


def test_tiny_run_on_the_gpu_uses_nf4(tmp_path) -> None:
    out = tmp_path / "run"
    result = run_ent("run", "--model", "tiny-llama", "--companion", "math", "--steps", "20", "--diag-every", "10",
                     "--device", "cuda", "--quantize", "nf4", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((out / "run.json").read_text())
    assert (record["status"], record["quantization"]) == ("finished", "nf4") and record["device"].startswith("cuda")
    # --speed auto is fast on CUDA, whose default optimizer is torch's fused AdamW
    assert record["optimizer"] == TORCH_ADAMW_NAMES["adamw_fused"] and record["speed"]["mode"] == "fast"
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


GPU_RUN = ["--model", "tiny-qwen2", "--companion", "nl", "--steps", "40", "--diag-every", "10", "--seed", "3",
           "--device", "cuda"]


@pytest.mark.parametrize("optimizer", ["paged_adamw", "adamw_fused"])
def test_gpu_rollback(tmp_path, optimizer: str) -> None:
    out = tmp_path / "run"
    result = run_ent("run", *GPU_RUN, "--optimizer", optimizer, "--out", str(out), "--inject-fault", "nan-adapter@15")
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "finished" and [e["event"] for e in record["events"]] == ["rollback"]
    assert record["optimizer"] == TORCH_ADAMW_NAMES.get(optimizer, optimizer)
    import torch
    from safetensors.torch import load_file

    for folder in (out / "adapters").glob("step-*"):
        assert all(torch.isfinite(t).all() for t in load_file(str(folder / "adapter_model.safetensors")).values())


def test_gpu_crash_and_resume_matches_an_uninterrupted_run(tmp_path) -> None:
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    assert run_ent("run", *GPU_RUN, "--out", str(straight)).returncode == 0
    assert run_ent("run", *GPU_RUN, "--out", str(crashed), "--inject-fault", "crash@25").returncode != 0
    assert run_ent("run", "--resume", str(crashed)).returncode == 0

    def metric_records(run_dir):
        lines = (run_dir / "diagnostics.jsonl").read_text().splitlines()
        return [r for r in map(json.loads, lines) if "event" not in r]

    a, b = metric_records(straight), metric_records(crashed)
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for x, y in zip(a, b):
        assert x["ei"] == y["ei"], x["step"]
        assert x["train_loss"] == y["train_loss"] or abs(x["train_loss"] - y["train_loss"]) < 1e-6, x["step"]
        np.testing.assert_allclose(x["spectrum"], y["spectrum"], rtol=1e-6)


def test_a_dequantised_layer_multiplies_as_bitsandbytes_does_on_the_gpu() -> None:
    """Where speed.bnb_dequantizes says bitsandbytes dequantises and calls F.linear (large batches, no
    gradients), the cached bf16 weight gives its result bit for bit; below that bitsandbytes' kernel is kept."""
    import torch
    from bitsandbytes.nn import Linear4bit

    from ent_harness.modeling import load_model
    from ent_harness.plugin_manager import get_registry
    from ent_harness.speed import BNB_DEQUANTIZES_ABOVE_ROWS, bnb_dequantizes, dequantize_layer

    registry = get_registry()
    loaded = load_model(registry.get("model", "tiny-qwen2"), registry, quantize="nf4", device="cuda")
    layer = loaded.model.model.layers[0]
    originals = {name: m for name, m in layer.named_modules() if isinstance(m, Linear4bit)}
    assert dequantize_layer(layer) == len(originals) == 7
    dequantized = {name: m for name, m in layer.named_modules() if type(m).__name__ == "DequantizedLinear"}
    generator = torch.Generator(device="cuda").manual_seed(0)
    with torch.inference_mode():
        for rows in (BNB_DEQUANTIZES_ABOVE_ROWS + 1, 4096):
            for name, module in dequantized.items():
                x = torch.randn(2, rows // 2 + 1, module.in_features, device="cuda", generator=generator)
                assert bnb_dequantizes(x) and module.multiplies_like_bitsandbytes(x)
                assert torch.equal(module(x), originals[name](x)), (name, rows)
        assert not bnb_dequantizes(torch.zeros(16, 8, device="cuda"))
