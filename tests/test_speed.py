"""--speed fast / low-memory compute the function of the plain transformers + peft step (harness/speed.py).

On the CPU every lever is checked against the plain path bit for bit (loss, every adapter gradient,
probe activations); bench/qlora_throughput.py measures the speed on a GPU (BENCHMARKS.md).
"""

from __future__ import annotations

import json

import pytest
from conftest import run_ent

pytest.importorskip("bitsandbytes")


def _tiny(dropout: float = 0.0, alpha: int = 16):
    import torch

    from ent_harness.modeling import attach_lora, load_model
    from ent_harness.plugin_manager import build_registry

    registry = build_registry()
    torch.manual_seed(0)
    loaded = load_model(registry.get("model", "tiny-qwen2"), registry, "nf4", "cpu")
    model = attach_lora(loaded, 8, alpha, dropout, None)
    with torch.no_grad():  # a trained-looking adapter, so that LoRA's branch matters in every check
        generator = torch.Generator().manual_seed(1)
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.02)
    return loaded, model


def _loss_and_grads(model, ids, fused: bool):
    import torch

    from ent_harness.speed import causal_lm_loss

    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = causal_lm_loss(model, ids, fused=fused)
    loss.backward()
    return float(loss.detach()), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_fused_loss_dequantised_layers_and_lean_lora_compute_the_plain_step() -> None:
    import numpy as np
    import torch
    from bitsandbytes.nn import Linear4bit

    from ent_harness.modeling import terminal_activations
    from ent_harness.speed import dequantize_layer, install_lean_lora

    ids = torch.randint(0, 250, (2, 48), generator=torch.Generator().manual_seed(2))
    texts = ["def add(a, b): return a + b", "The integral of x is x squared over two.", "hi"]
    loaded, plain = _tiny()
    plain_loss, plain_grads = _loss_and_grads(plain, ids, fused=False)
    plain_rows = terminal_activations(loaded, texts, 2, 32)

    loaded, fast = _tiny()
    replaced = sum(dequantize_layer(layer) for layer in fast.get_base_model().model.layers)
    dequantized = [m for m in fast.modules() if type(m).__name__ == "DequantizedLinear"]
    assert replaced == len(dequantized) == 4 * 7
    # each keeps its 4-bit original (for diagnostics, which run without gradients) and nothing else is 4-bit
    assert sum(isinstance(m, Linear4bit) for m in fast.modules()) == 4 * 7
    assert all(isinstance(m.quantized, Linear4bit) for m in dequantized)
    assert sum(dequantize_layer(layer) for layer in fast.get_base_model().model.layers) == 0  # idempotent
    assert install_lean_lora(fast) == 4 * 7
    fast_loss, fast_grads = _loss_and_grads(fast, ids, fused=True)
    assert fast_loss == pytest.approx(plain_loss, rel=1e-6)  # token losses summed in another order
    assert fast_grads.keys() == plain_grads.keys()
    for name, grad in plain_grads.items():  # the same bf16 GEMMs on the same rounded values
        assert torch.equal(fast_grads[name], grad), name
    np.testing.assert_array_equal(terminal_activations(loaded, texts, 2, 32), plain_rows)


@pytest.mark.parametrize("alpha", [16, 12, 4])  # LoRA scaling 2 (a power of two), 1.5 and 0.5 (PEFT's path)
def test_probe_passes_on_dequantised_layers_give_the_4bit_rows_bit_for_bit(monkeypatch, alpha: int) -> None:
    """Where bitsandbytes would dequantise and call F.linear itself (large batches on a GPU; forced here), a
    dequantised layer's probe pass multiplies by its cached weight and, at a power-of-two scaling, adds the
    adapter in one pass: the rows are still those of the plain 4-bit model."""
    import numpy as np
    from bitsandbytes.nn import Linear4bit

    from ent_harness import speed
    from ent_harness.modeling import terminal_activations

    texts = ["def add(a, b): return a + b", "The integral of x is x squared over two.", "hi", "x = [i for i in y]"]
    loaded, _ = _tiny(alpha=alpha)
    plain_rows = terminal_activations(loaded, texts, 2, 32)

    loaded, fast = _tiny(alpha=alpha)
    for layer in fast.get_base_model().model.layers:
        speed.dequantize_layer(layer)
    speed.install_lean_lora(fast)
    assert all(m.cached_like_bitsandbytes for m in fast.modules() if type(m).__name__ == "DequantizedLinear")
    calls = {"4-bit": 0, "one pass": 0}
    four_bit_forward, inference_forward = Linear4bit.forward, speed._inference_forward

    def counted_4bit(self, x):
        calls["4-bit"] += 1
        return four_bit_forward(self, x)

    def counted_inference(self, x):
        fused = inference_forward(self, x)
        calls["one pass"] += fused is not None
        return fused

    monkeypatch.setattr(Linear4bit, "forward", counted_4bit)
    monkeypatch.setattr(speed, "_inference_forward", counted_inference)
    assert not speed.bnb_dequantizes(__import__("torch").zeros(4096, 8))  # the CPU keeps bitsandbytes' kernel
    monkeypatch.setattr(speed, "bnb_dequantizes", lambda x: True)
    rows = terminal_activations(loaded, texts, 2, 32)
    np.testing.assert_array_equal(rows, plain_rows)
    assert calls["4-bit"] == 0  # every base matmul used the cached weight
    assert calls["one pass"] == (4 * 7 * 2 if alpha == 16 else 0)  # 4 layers x 7 adapters x 2 batches


def test_fused_loss_ignores_masked_targets_like_cross_entropy() -> None:
    import torch

    from ent_harness.speed import LinearCrossEntropy

    generator = torch.Generator().manual_seed(3)
    hidden = torch.randn(37, 16, generator=generator, requires_grad=True)
    weight = torch.randn(50, 16, generator=generator)
    targets = torch.randint(0, 50, (37,), generator=generator)
    targets[[0, 5, 36]] = -100
    loss = LinearCrossEntropy.apply(hidden, weight, targets, 8)  # chunks of 8 rows: 5 chunks, the last short
    loss.backward()
    reference_hidden = hidden.detach().clone().requires_grad_(True)
    reference = torch.nn.functional.cross_entropy(reference_hidden @ weight.T, targets, ignore_index=-100)
    reference.backward()
    assert torch.allclose(loss, reference, rtol=1e-6, atol=1e-6)
    assert torch.allclose(hidden.grad, reference_hidden.grad, rtol=1e-5, atol=1e-7)
    assert hidden.grad[[0, 5, 36]].abs().max() == 0


def test_the_plan_keeps_activations_first_then_recomputes_selectively_then_fully_within_the_budget() -> None:
    from ent_harness.config import RunConfig
    from ent_harness.speed import apply_speed, plan_speed

    loaded, model = _tiny()
    config = RunConfig(model="tiny-qwen2", batch_size=4, seq_len=1024)
    roomy = plan_speed(model, loaded, config, "fast", checkpointing=True, budget_gib=8.0)
    assert (roomy.recomputed_layers, roomy.selective_layers, roomy.dequantized_layers) == (0, 0, 4)
    assert roomy.estimate_gib <= 8.0 and roomy.fused_loss and roomy.lean_lora
    assert not roomy.compiled  # CPU: compiled layers only on CUDA unless --compile on
    recompute_all = RunConfig(model="tiny-qwen2", batch_size=4, seq_len=1024, gradient_checkpointing="on")
    smallest = plan_speed(model, loaded, recompute_all, "fast", checkpointing=True, budget_gib=0.0)
    assert (smallest.recomputed_layers, smallest.dequantized_layers) == (4, 0)
    low_end = smallest.estimate_gib
    high_end = roomy.estimate_gib - roomy.terms_gib["dequantized"]
    previous = roomy
    seen = set()
    for tenth in range(10, -1, -1):  # budgets from "all kept" down to "every layer recomputed"
        budget = low_end + (high_end - low_end) * tenth / 10
        plan = plan_speed(model, loaded, config, "fast", checkpointing=True, budget_gib=budget)
        kept = plan.layers - plan.selective_layers - plan.recomputed_layers
        assert plan.estimate_gib <= budget + 0.01  # terms are rounded to MiB
        assert kept <= previous.layers - previous.selective_layers - previous.recomputed_layers
        assert plan.recomputed_layers >= previous.recomputed_layers
        seen.add((kept > 0, plan.selective_layers > 0, plan.recomputed_layers > 0))
        previous = plan
    assert (False, True, False) in seen or (True, True, False) in seen  # selective recomputation was used
    assert plan.selective_layers + plan.recomputed_layers == 4  # the smallest budget keeps no layer whole
    low = plan_speed(model, loaded, config, "low-memory", checkpointing=True)
    assert (low.recomputed_layers, low.dequantized_layers, low.fused_loss) == (4, 0, True)
    plain = plan_speed(model, loaded, config, "plain", checkpointing=False)
    assert not plain.fused_loss and apply_speed(model, loaded, plain) is plain


def test_selective_recomputation_gives_the_gradients_of_no_recomputation() -> None:
    """Attention and rank-r outputs kept, everything else (dropout included, same RNG state) recomputed."""
    import torch

    from ent_harness.config import RunConfig
    from ent_harness.modeling import enable_checkpointing
    from ent_harness.speed import SpeedPlan, apply_speed, causal_lm_loss

    from torch.utils._python_dispatch import TorchDispatchMode

    class CountOps(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.counts: dict[str, int] = {}

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.counts[str(func)] = self.counts.get(str(func), 0) + 1
            return func(*args, **(kwargs or {}))

    ids = torch.randint(0, 250, (2, 48), generator=torch.Generator().manual_seed(6))
    results, backward_ops = [], []
    for selective, gemms in ((0, 0), (4, 0), (4, 4)):  # none, selective, selective keeping the GEMM outputs
        loaded, model = _tiny(dropout=0.1)
        if selective:
            enable_checkpointing(model.get_base_model())
            apply_speed(model, loaded, SpeedPlan(mode="fast", layers=4, selective_layers=selective,
                                                 selective_gemm_layers=gemms))
        model.train()
        torch.manual_seed(7)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = causal_lm_loss(model, ids, fused=False)
        counter = CountOps()
        with counter:
            loss.backward()
        backward_ops.append(counter.counts)
        results.append((float(loss.detach()), {n: p.grad.clone() for n, p in model.named_parameters()
                                               if p.requires_grad}))
    (loss, grads), *recomputed = results
    # the adapters' rank-r down-projections are kept (4 layers x 7), the base GEMMs (bitsandbytes' fused
    # 4-bit GEMM) recomputed: 28 of them, and the adapters' up-projections; keeping the GEMM outputs as well,
    # no base GEMM is recomputed
    assert backward_ops[1]["bitsandbytes.gemm_4bit.default"] == 4 * 7
    assert backward_ops[2].get("bitsandbytes.gemm_4bit.default", 0) == 0
    for counts in backward_ops[1:]:
        assert counts["aten.mm.default"] - backward_ops[0]["aten.mm.default"] <= 4 * 7 + 2
    for selective_loss, selective_grads in recomputed:  # exactly the step of no recomputation
        assert selective_loss == loss
        for name, grad in grads.items():
            assert torch.equal(selective_grads[name], grad), name
    assert RunConfig(model="tiny-qwen2").compile_layers == "auto"


@pytest.mark.slow
def test_a_fast_run_records_the_same_trajectory_as_a_plain_run(tmp_path, one_blas_thread) -> None:
    records = {}
    for mode in ("plain", "fast"):
        out = tmp_path / mode
        result = run_ent("run", "--model", "tiny-qwen2", "--steps", "20", "--diag-every", "10", "--speed", mode,
                         "--out", str(out), "--no-tensorboard")
        assert result.returncode == 0, result.stderr
        records[mode] = [json.loads(line) for line in (out / "diagnostics.jsonl").read_text().splitlines()]
        run = json.loads((out / "run.json").read_text())
        assert run["speed"]["mode"] == mode
    assert [r["step"] for r in records["fast"]] == [0, 10, 20]
    assert records["fast"][0]["ei"] == records["plain"][0]["ei"]  # the same base activations, bit for bit
    # With dropout on, the fused loss's softmax (exp(logits - lse)) and cross_entropy's (exp(log_softmax))
    # differ in the last fp32 bit, which flips a bf16 rounding now and then: the same function within bf16
    # noise. The EI of a 4-layer random model moves in steps of 1/60, so only the losses are compared later.
    for plain, fast in zip(records["plain"][1:], records["fast"][1:], strict=True):
        assert fast["train_loss"] == pytest.approx(plain["train_loss"], rel=1e-3)


def test_bad_speed_settings_are_one_line_errors() -> None:
    result = run_ent("run", "--model", "tiny-qwen2", "--memory-budget", "-3", "--out", "/nonexistent/x")
    assert result.returncode == 2 and "memory_budget_gib" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_lean_forward_and_the_fused_loss_apply_only_where_they_compute_the_same() -> None:
    import torch

    from ent_harness.config import RunConfig
    from ent_harness.modeling import attach_lora, load_model
    from ent_harness.plugin_manager import build_registry
    from ent_harness.speed import fusable_head, install_lean_lora

    registry = build_registry()
    loaded = load_model(registry.get("model", "tiny-qwen2"), registry, "none", "cpu")  # a bf16 base
    model = attach_lora(loaded, 8, 16, 0.0, None)
    assert install_lean_lora(model) == 0  # PEFT's bf16 lora.Linear casts differently: left alone
    lm = model.get_base_model()
    assert fusable_head(lm)
    lm.config.final_logit_softcapping = 30.0
    assert not fusable_head(lm)
    lm.config.final_logit_softcapping = None
    lm.lm_head.bias = torch.nn.Parameter(torch.zeros(lm.lm_head.out_features))
    assert not fusable_head(lm)
    # a run recorded before these settings existed resumes as it was started
    legacy = {k: v for k, v in RunConfig(model="tiny-qwen2").to_record().items()
              if k not in ("speed", "compile_layers", "dropout_seeding", "probe_batching")}
    resumed = RunConfig.from_record(legacy)
    assert (resumed.speed, resumed.compile_layers, resumed.dropout_seeding, resumed.probe_batching) == (
        "plain", "off", "stream", "in-order")
    fresh = RunConfig.from_record(RunConfig(model="tiny-qwen2").to_record())
    assert (fresh.speed, fresh.dropout_seeding, fresh.probe_batching) == ("auto", "per-micro-batch", "by-length")


@pytest.mark.slow
def test_compiled_layers_checkpoint_inside_the_graph_without_graph_breaks() -> None:
    """Selective layers under torch.compile (CPU inductor here, CUDA in runs): the checkpoint sits inside the
    compiled forward (so the partitioner recomputes only what the backward reads), the layer has no graph
    break (the 4-bit projections' biases are bf16 from the load on), and the step computes what a compiled
    step keeping every activation computes, dropout included."""
    import torch
    from torch._dynamo.utils import counters

    from ent_harness.modeling import enable_checkpointing
    from ent_harness.speed import SpeedPlan, apply_speed, causal_lm_loss

    torch._dynamo.reset()
    ids = torch.randint(0, 250, (2, 48), generator=torch.Generator().manual_seed(6))
    results = []
    for selective, gemms in ((0, 0), (4, 0), (4, 2), (4, 4)):
        loaded, model = _tiny(dropout=0.1)
        enable_checkpointing(model.get_base_model())  # as `ent run` does on CUDA; apply_speed sets each layer
        biases = [m.bias for m in model.modules() if type(m).__name__ == "Linear4bit" and m.bias is not None]
        assert biases and all(b.dtype == torch.bfloat16 for b in biases)  # Qwen's q/k/v biases
        plan = apply_speed(model, loaded, SpeedPlan(mode="fast", layers=4, selective_layers=selective,
                                                    selective_gemm_layers=gemms, compiled=True))
        layers = model.get_base_model().model.layers
        assert all(not layer.gradient_checkpointing for layer in layers)  # transformers' own stays off
        assert sum("forward" in vars(layer) for layer in layers) == selective  # the in-graph wrapper
        model.train()
        counters.clear()
        saved = [0]
        weights = {p.data_ptr() for p in model.parameters()}

        def pack(tensor, saved=saved, weights=weights):
            if tensor.data_ptr() not in weights:  # parameters are saved by reference: no memory
                saved[0] += tensor.numel() * tensor.element_size()
            return tensor

        torch.manual_seed(7)
        with torch.autocast("cpu", dtype=torch.bfloat16), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = causal_lm_loss(model, ids, fused=plan.fused_loss)
        loss.backward()
        assert sum(counters["graph_break"].values()) == 0
        results.append((float(loss.detach()), saved[0], {n: p.grad.clone() for n, p in model.named_parameters()
                                                          if p.requires_grad}))
    (loss, kept_bytes, grads), *selective = results
    # recomputed in the backward instead of kept; two policies in one model compile to two graphs
    assert selective[0][1] < selective[1][1] < selective[2][1] < kept_bytes
    for selective_loss, _, selective_grads in selective:
        assert selective_loss == pytest.approx(loss, abs=1e-3)  # the same dropout masks; fused kernels round apart
        for name, grad in grads.items():
            assert torch.allclose(selective_grads[name], grad, rtol=0.02, atol=2e-3), name


def test_auto_optimizer_is_fused_adamw_under_fast_on_cuda_and_a_resume_keeps_the_recorded_one() -> None:
    import torch

    from ent_harness.config import RunConfig
    from ent_harness.trainer import build_optimizer, resolve_optimizer

    auto = RunConfig(model="tiny-qwen2")
    assert resolve_optimizer(auto, "cuda", fast=True) == "adamw_fused"
    assert resolve_optimizer(auto, "cpu", fast=True) == "adamw"
    assert resolve_optimizer(auto, "cuda", fast=False) in ("paged_adamw", "adamw")  # paged with bitsandbytes
    # a resumed run keeps the implementation its checkpointed state belongs to, whatever auto means now
    assert resolve_optimizer(auto, "cuda", fast=True, recorded="paged_adamw") == "paged_adamw"
    assert resolve_optimizer(auto, "cuda", fast=True, recorded="adamw (torch)") == "adamw"
    assert resolve_optimizer(auto, "cpu", fast=False, recorded="adamw (torch, fused)") == "adamw_fused"
    chosen = RunConfig(model="tiny-qwen2", optimizer="adamw")
    assert resolve_optimizer(chosen, "cuda", fast=True, recorded="paged_adamw") == "adamw"
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer, name = build_optimizer([weight], RunConfig(model="tiny-qwen2", optimizer="adamw_fused"), "cpu")
    assert name == "adamw (torch, fused)" and optimizer.defaults["fused"]
    assert resolve_optimizer(auto, "cpu", recorded=name) == "adamw_fused"
    # the NaN guard's snapshot (host copies of the state) restores the fused optimizer exactly
    from ent_harness.guard import Snapshot

    weight.grad = torch.full((3,), 0.5)
    optimizer.step()
    snapshot = Snapshot.take(1, [weight], optimizer)
    saved = {k: v.clone() for k, v in optimizer.state[weight].items()}
    weight.grad = torch.full((3,), -2.0)
    optimizer.step()
    snapshot.restore([weight], optimizer)
    assert all(torch.equal(optimizer.state[optimizer.param_groups[0]["params"][0]][k], v) for k, v in saved.items())
    assert torch.equal(weight.detach(), snapshot.params[0])
    # the next snapshot reuses the buffers of the one it replaces, and holds the new state, not the old
    weight.grad = torch.full((3,), 3.0)
    optimizer.step()
    newer = Snapshot.take(2, [weight], optimizer, reuse=snapshot)
    assert newer.params[0].data_ptr() == snapshot.params[0].data_ptr()
    assert newer.optimizer_state["state"][0]["exp_avg"].data_ptr() == snapshot.optimizer_state["state"][0]["exp_avg"].data_ptr()
    at_two = weight.detach().clone(), {k: v.clone() for k, v in optimizer.state[weight].items()}
    weight.grad = torch.full((3,), -1.0)
    optimizer.step()
    newer.restore([weight], optimizer)
    assert torch.equal(weight.detach(), at_two[0])
    assert all(torch.equal(optimizer.state[optimizer.param_groups[0]["params"][0]][k], v) for k, v in at_two[1].items())


def test_a_compiled_plan_counts_the_smaller_activations_of_compiled_layers() -> None:
    from ent_harness.config import RunConfig
    from ent_harness.speed import COMPILED_ACTIVATION_RATIO, plan_speed

    loaded, model = _tiny()
    budget = 0.5
    eager = plan_speed(model, loaded, RunConfig(model="tiny-qwen2", batch_size=4, seq_len=1024, compile_layers="off"),
                       "fast", checkpointing=True, budget_gib=budget)
    compiled = plan_speed(model, loaded, RunConfig(model="tiny-qwen2", batch_size=4, seq_len=1024,
                                                   compile_layers="on"), "fast", checkpointing=True, budget_gib=budget)
    assert compiled.compiled and not eager.compiled
    kept = [p.layers - p.selective_layers - p.recomputed_layers for p in (eager, compiled)]
    assert kept[1] >= kept[0] and compiled.estimate_gib <= budget + 0.01
    all_kept = [plan_speed(model, loaded, RunConfig(model="tiny-qwen2", batch_size=4, seq_len=1024,
                                                    compile_layers=c), "fast", checkpointing=True, budget_gib=8.0)
                for c in ("off", "on")]
    ratio = all_kept[1].terms_gib["activations"] / all_kept[0].terms_gib["activations"]
    assert ratio == pytest.approx(COMPILED_ACTIVATION_RATIO, abs=0.01)


def test_probe_batches_hold_at_most_the_probes_and_padded_tokens_asked() -> None:
    from ent_harness.modeling import probe_batches

    assert probe_batches([5] * 10, 4, 100) == [(0, 4), (4, 8), (8, 10)]
    # 3 x 30 > 64 closes the first batch; a probe longer than the cap gets a batch of its own
    assert probe_batches([10, 20, 30, 300, 40], 128, 64) == [(0, 2), (2, 3), (3, 4), (4, 5)]
    assert probe_batches([256] * 40, 16, 16 * 256) == [(0, 16), (16, 32), (32, 40)]  # batches of 16 as before
    assert probe_batches([], 4, 10) == []


def test_the_4bit_bias_is_pinned_to_the_dtype_bitsandbytes_gives_it(monkeypatch) -> None:
    """bitsandbytes 0.50 casts a biased 4-bit layer's bias to bf16 in its first forward, earlier versions to the
    input's float32: the load does the same, so no forward (compiled or in inference mode) changes it."""
    import bitsandbytes
    import torch

    from ent_harness.modeling import load_model
    from ent_harness.plugin_manager import build_registry

    registry = build_registry()

    def bias_dtypes():
        loaded = load_model(registry.get("model", "tiny-qwen2"), registry, "nf4", "cpu")
        return {m.bias.dtype for m in loaded.model.modules() if type(m).__name__ == "Linear4bit" and m.bias is not None}

    assert bias_dtypes() == ({torch.bfloat16} if tuple(map(int, bitsandbytes.__version__.split(".")[:2])) >= (0, 50)
                             else {torch.float32})
    monkeypatch.setattr(bitsandbytes, "__version__", "0.49.0")
    assert bias_dtypes() == {torch.float32}
