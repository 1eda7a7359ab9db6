"""Training speed levers: the same QLoRA function as the plain transformers + peft step, computed faster.

What a step computes is fixed by the protocol: NF4-dequantised base weights in bf16 matmuls, LoRA r/alpha
on the seven linears, autocast bf16, full-vocabulary cross-entropy. What this module changes is how:

- ``fused loss``: the lm_head matmul and the cross-entropy run chunk by chunk in one autograd function
  (:class:`LinearCrossEntropy`), so the ``tokens x vocabulary`` logits (7 GiB in fp32 for Qwen at 4 x 1024)
  never exist at once. Each chunk is the same bf16 GEMM and the same fp32 log-softmax as the plain path.
- ``dequantised layers``: each 4-bit base weight of those layers is dequantised once with bitsandbytes'
  own kernel and kept in bf16 (:class:`DequantizedLinear`), instead of being dequantised again in every
  forward, recomputation and backward pass. The matmul sees the identical bf16 tensor, so the numbers do not
  change; the cost is memory (2 bytes instead of ~0.52 per weight).
- ``recomputed layers``: only as many decoder layers as the memory budget requires run under gradient
  checkpointing; the others keep their activations (one forward pass less for each).
- ``lean LoRA forward``: PEFT's 4-bit LoRA layer clones the base output before adding the adapter's; the
  lean forward adds without the copy (same values).

- ``selective recomputation``: layers that cannot keep all their activations keep attention's results and the
  adapters' rank-r activations, and recompute the rest; as many of them as memory allows also keep their base
  GEMMs' outputs, so their backward recomputes only element-wise work.
- ``compiled layers`` (CUDA): each decoder layer under ``torch.compile``, which fuses that element-wise work.

``plan_speed`` fits these into a memory budget (default: what an 80 GB card holds, so a run configured on an
H200 also runs on an H100 80GB) using the memory model of :mod:`.planning`. Modes: ``fast`` (the above within
the budget), ``low-memory`` (fused loss and lean forward, every layer recomputed, nothing dequantised: at most
the plain stack's memory), ``plain`` (PEFT and transformers as they come), ``auto`` (fast on CUDA, plain on
CPU). docs/protocol.md, section "Speed", and BENCHMARKS.md give the measured effect of each lever.
"""

from __future__ import annotations

import functools
import types
from dataclasses import asdict, dataclass, field
from typing import Any

from .config import SPEED_MODES
from .errors import EntError

DEFAULT_BUDGET_GIB = 72.0
"""Allocated-memory budget of ``fast``: an 80 GB card (79.1 GiB usable) less the CUDA context and the caching
allocator's fragmentation (measured 2.6-2.8 GiB on the 7B and 32B twins, bench/zoo_gpu.py)."""
BUDGET_FRACTION = 0.9
"""On a card smaller than 80 GB the budget is this fraction of its memory."""
EIGHTY_GB_CARD_GIB = 79.0
"""What torch reports for an 80 GB card (79.1 GiB for an H100 80GB); from there up the budget is the same."""
COMPILED_ACTIVATION_RATIO = 0.8
"""What a compiled decoder layer keeps for its backward, as a fraction of the eager estimate of
:func:`ent_harness.planning.layer_activation_bytes_per_token` (the compiler's partitioner chooses what to keep
and what to recompute, and keeps less than eager autograd does). Measured on an H200 (BENCHMARKS.md):
each layer kept whole instead of selectively recomputed added 1.76 GB on the 32B twin against 2.18 GB
estimated (0.81), and the 7B twin, every layer kept, peaked at 58.4 GiB against 68.8 GiB planned. 0.8 keeps the
plan above what was measured."""
LOSS_CHUNK_TOKENS = 1024
"""Rows of the fused loss per chunk: 1024 x 152k fp32 logits are 0.6 GB."""
GIB = float(1 << 30)


@dataclass
class SpeedPlan:
    """What a run's training step does, and the memory arithmetic behind it (recorded in run.json)."""

    mode: str
    fused_loss: bool = False
    lean_lora: bool = False
    layers: int = 0
    recomputed_layers: int = 0  # under full gradient checkpointing (input kept, the whole layer recomputed)
    selective_layers: int = 0  # under selective checkpointing (attention and rank-r outputs kept, the rest recomputed)
    selective_gemm_layers: int = 0  # of those, the ones that also keep their base GEMMs' outputs
    dequantized_layers: int = 0
    compiled: bool = False  # decoder layers compiled with torch.compile for training (diagnostics stay eager)
    budget_gib: float | None = None
    estimate_gib: float | None = None
    terms_gib: dict[str, float] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return asdict(self)


def resolve_mode(requested: str, device_type: str) -> str:
    if requested not in SPEED_MODES:
        raise EntError(f"Invalid speed {requested!r}", f"choose one of {', '.join(SPEED_MODES)}")
    if requested == "auto":
        return "fast" if device_type == "cuda" else "plain"
    return requested


# ---- the fused lm_head + cross-entropy ------------------------------------------------------------------
def _linear_cross_entropy_forward(hidden: Any, weight: Any, targets: Any, chunk: int) -> tuple[Any, Any]:
    """Mean token loss and d(mean)/d(hidden), chunk by chunk; ``targets == -100`` are ignored.

    The gradient is scaled by 1/tokens before its bf16 cast, as the plain path's cross-entropy backward
    does, so both round the same values.
    """
    import torch

    rows = hidden.shape[0]
    grad_hidden = torch.empty(hidden.shape, dtype=hidden.dtype, device=hidden.device)
    total = torch.zeros((), dtype=torch.float32, device=hidden.device)
    scale = 1.0 / max(int((targets != -100).sum()), 1)
    for start in range(0, rows, chunk):
        h = hidden[start:start + chunk]
        t = targets[start:start + chunk]
        # the plain path: autocast's bf16 GEMM, then transformers' .float() before the loss
        logits = torch.nn.functional.linear(h.to(weight.dtype), weight).float()
        lse = torch.logsumexp(logits, dim=-1)
        keep = t != -100
        safe = torch.where(keep, t, torch.zeros_like(t))
        picked = logits.gather(1, safe.unsqueeze(1)).squeeze(1)
        total += torch.where(keep, lse - picked, torch.zeros_like(lse)).sum()
        # d loss / d logits = softmax - onehot (rows of ignored targets: zero), in place over the logits
        grad = logits.sub_(lse.unsqueeze(1)).exp_()
        grad.scatter_add_(1, safe.unsqueeze(1), torch.full_like(picked, -1.0).unsqueeze(1))
        grad.mul_(keep.unsqueeze(1) * scale)
        grad_hidden[start:start + chunk] = (grad.to(weight.dtype) @ weight).to(hidden.dtype)
    return total * scale, grad_hidden


class LinearCrossEntropy:
    """Mean token cross-entropy of ``hidden @ weight.T`` against ``targets`` without materialising the logits.

    ``weight`` is frozen (the lm_head is not trained), so only ``hidden`` gets a gradient; it is computed in
    the forward pass, chunk by chunk, and scaled by the incoming gradient in the backward pass.
    """

    @staticmethod
    def apply(hidden: Any, weight: Any, targets: Any, chunk: int = LOSS_CHUNK_TOKENS) -> Any:
        return _function().apply(hidden, weight, targets, chunk)


_FUNCTION: Any = None


def _function() -> Any:
    global _FUNCTION
    if _FUNCTION is None:
        import torch

        class _LinearCrossEntropyFunction(torch.autograd.Function):
            @staticmethod
            def forward(ctx: Any, hidden: Any, weight: Any, targets: Any, chunk: int) -> Any:
                loss, grad_hidden = _linear_cross_entropy_forward(hidden, weight, targets, chunk)
                ctx.save_for_backward(grad_hidden)
                return loss

            @staticmethod
            def backward(ctx: Any, grad_output: Any) -> Any:
                (grad_hidden,) = ctx.saved_tensors
                # exact when grad_output is a power of two (1 / grad_accum for 1, 2, 4, ... micro-batches)
                return grad_hidden * grad_output.to(grad_hidden.dtype), None, None, None

        _FUNCTION = _LinearCrossEntropyFunction
    return _FUNCTION


def fusable_head(lm: Any) -> bool:
    """Whether the fused loss computes exactly what ``lm`` does: a bias-free plain linear head (no adapter on
    it) and no logit softcapping or scaling in the config."""
    import torch

    head = lm.get_output_embeddings()
    config = lm.config
    return (type(head) is torch.nn.Linear and head.bias is None
            and not getattr(config, "final_logit_softcapping", None)
            and getattr(config, "logit_scale", None) in (None, 1, 1.0))


def causal_lm_loss(model: Any, input_ids: Any, fused: bool, decoder_path: str = "model") -> Any:
    """The next-token loss of ``input_ids`` (labels = inputs, shifted), as ``model(..., labels=ids).loss``."""
    if not fused:
        return model(input_ids=input_ids, labels=input_ids).loss
    from .modeling import causal_lm

    lm = causal_lm(model)
    decoder = lm.get_submodule(decoder_path)
    hidden = decoder(input_ids=input_ids, use_cache=False).last_hidden_state
    width = hidden.shape[-1]
    return LinearCrossEntropy.apply(hidden[:, :-1].reshape(-1, width), lm_head_bf16(lm),
                                    input_ids[:, 1:].reshape(-1))


def lm_head_bf16(lm: Any) -> Any:
    """A bf16 copy of the frozen lm_head weight, made once (autocast makes the same cast every step)."""
    import torch

    head = lm.get_output_embeddings().weight
    cached = getattr(lm, "_ent_lm_head_bf16", None)
    if cached is None or cached.shape != head.shape or cached.device != head.device:
        cached = head.detach().to(torch.bfloat16)
        lm._ent_lm_head_bf16 = cached
    return cached


# ---- dequantise once -----------------------------------------------------------------------------------
_DEQUANTIZED_LINEAR: Any = None


def _dequantized_linear_class() -> Any:
    global _DEQUANTIZED_LINEAR
    if _DEQUANTIZED_LINEAR is not None:
        return _DEQUANTIZED_LINEAR
    import torch

    class DequantizedLinear(torch.nn.Module):
        """A frozen 4-bit linear that multiplies by its weight dequantised once.

        It does what ``Linear4bit`` does for a training-sized batch: cast the input to the compute dtype,
        multiply by ``dequantize_4bit(W)`` in bf16, cast back to the input's dtype, with the bf16 tensor cached
        instead of dequantised again. Without gradients (diagnostics) it does so only where bitsandbytes
        itself would (:meth:`multiplies_like_bitsandbytes`) and otherwise calls the original ``Linear4bit``,
        whose fused 4-bit kernel bitsandbytes picks for small batches: either way probe activations are those
        ``ent diagnose --adapter`` computes on a freshly loaded model, bit for bit.
        """

        def __init__(self, quantized: Any, weight: Any, compute_dtype: Any) -> None:
            super().__init__()
            self.quantized = quantized
            self.weight = torch.nn.Parameter(weight, requires_grad=False)
            self.compute_dtype = compute_dtype
            self.out_features, self.in_features = weight.shape
            # bitsandbytes dequantises straight into the compute dtype; the cached copy was dequantised into the
            # weight's own dtype and then cast: the same values only when the two dtypes agree
            state = getattr(quantized.weight, "quant_state", None)
            self.cached_like_bitsandbytes = getattr(state, "dtype", None) == compute_dtype

        def multiplies_like_bitsandbytes(self, x: Any) -> bool:
            """Without gradients: whether the cached weight gives what the 4-bit layer gives for ``x``."""
            return self.cached_like_bitsandbytes and bnb_dequantizes(x)

        def forward(self, x: Any) -> Any:
            if not torch.is_grad_enabled() and not self.multiplies_like_bitsandbytes(x):
                return self.quantized(x)
            return self.linear_in_compute_dtype(x).to(x.dtype)

        def linear_in_compute_dtype(self, x: Any) -> Any:
            """The matmul before the cast back to the input's dtype."""
            bias = self.quantized.bias
            bias = None if bias is None else bias.to(self.compute_dtype)
            return torch.nn.functional.linear(x.to(self.compute_dtype), self.weight, bias)

    _DEQUANTIZED_LINEAR = DequantizedLinear
    return DequantizedLinear


BNB_DEQUANTIZES_ABOVE_ROWS = 1536
"""Without gradients, bitsandbytes' 4-bit matmul on a CUDA (or ROCm) GPU dequantises the weight and calls
``F.linear`` for inputs of more rows than this (0.50: ``_gemm_4bit_custom_max_m``, 1536 on CUDA, 256 on ROCm,
read from bitsandbytes where it has it; before 0.50: for any input of more than one row); below it, it may pick
its fused kernel, whose rounding differs. On the CPU its kernel depends on optional packages, so the 4-bit path
is kept there."""


@functools.cache
def _bnb_dequantize_threshold() -> int:
    try:
        from bitsandbytes.backends.cuda import ops
    except Exception:  # noqa: BLE001 - bitsandbytes before 0.50 (dequantises above one row) or without CUDA
        return BNB_DEQUANTIZES_ABOVE_ROWS
    return int(getattr(ops, "_gemm_4bit_custom_max_m", BNB_DEQUANTIZES_ABOVE_ROWS))


def bnb_dequantizes(x: Any) -> bool:
    """Whether bitsandbytes would multiply ``x`` (no gradients) by ``dequantize_4bit(W)`` with ``F.linear``, so
    that a cached dequantised weight gives its result bit for bit (checked on an H200: tests/test_gpu.py)."""
    return bool(x.is_cuda) and x.numel() // max(x.shape[-1], 1) > _bnb_dequantize_threshold()


def dequantize_layer(layer: Any) -> int:
    """Replace every 4-bit base linear inside ``layer`` (under PEFT LoRA wrappers or bare) by its bf16 copy."""
    import torch
    from bitsandbytes.functional import dequantize_4bit
    from bitsandbytes.nn import Linear4bit

    cls = _dequantized_linear_class()
    replaced = 0
    for _name, module in list(layer.named_modules()):
        if isinstance(module, cls):
            continue  # already dequantised: its child is the original 4-bit layer
        for child_name, child in list(module.named_children()):
            if not isinstance(child, Linear4bit):
                continue
            weight = dequantize_4bit(child.weight.data, child.weight.quant_state)
            dtype = child.compute_dtype or torch.bfloat16
            setattr(module, child_name, cls(child, weight.to(dtype), dtype))
            replaced += 1
    return replaced


# ---- the lean LoRA forward -------------------------------------------------------------------------------
def _lean_forward(self: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
    """PEFT's LoRA forward (vanilla LoRA, adapters active, unmerged) without the defensive clone."""
    import torch

    if (self.disable_adapters or self.merged or kwargs.get("adapter_names") is not None
            or any(name in self.lora_variant for name in self.active_adapters)):
        return self._ent_peft_forward(x, *args, **kwargs)
    if not torch.is_grad_enabled():
        fused = _inference_forward(self, x)
        if fused is not None:
            return fused
    result = self.base_layer(x, *args, **kwargs)
    for name in self.active_adapters:
        if name not in self.lora_A:
            continue
        lora_a, lora_b = self.lora_A[name], self.lora_B[name]
        requires_conversion = not torch.is_autocast_enabled()  # as PEFT decides it
        if requires_conversion:
            expected = result.dtype
            x = self._cast_input_dtype(x, lora_a.weight.dtype)
        output = lora_b(lora_a(self.lora_dropout[name](x))) * self.scaling[name]
        if requires_conversion:
            output = output.to(expected)
        result = result + output
    return result


def _inference_forward(self: Any, x: Any) -> Any | None:
    """The lean forward without gradients, in one element-wise pass where that gives the same bits, else None.

    PEFT computes ``base(x).to(x.dtype) + lora_B(lora_A(x)) * scaling``: three passes over the output (cast,
    scale, add). With one adapter whose weights have the input's dtype (float32 or bf16, no cast), a base layer
    that is a :class:`DequantizedLinear` multiplying as bitsandbytes would, without hooks, and a scaling 2^k with
    k >= 0 (alpha = 2r gives 2), the product is exact (short of overflow to inf, far beyond any activation), so
    one ``torch.add(base, lora, alpha=scaling)`` rounds once where PEFT's last addition rounds, to the same value.
    """
    import math

    import torch

    names = [name for name in self.active_adapters if name in self.lora_A]
    base_layer = self.base_layer
    if (len(names) != 1 or not isinstance(base_layer, _dequantized_linear_class())
            or not base_layer.multiplies_like_bitsandbytes(x) or base_layer._forward_hooks
            or base_layer._forward_pre_hooks or torch.nn.modules.module._global_forward_hooks
            or torch.nn.modules.module._global_forward_pre_hooks):
        return None
    name = names[0]
    lora_a, lora_b, scaling = self.lora_A[name], self.lora_B[name], self.scaling[name]
    if (torch.is_autocast_enabled() or x.dtype not in (torch.float32, torch.bfloat16)
            or lora_a.weight.dtype != x.dtype or lora_b.weight.dtype != x.dtype
            or not isinstance(scaling, (int, float)) or scaling < 1 or math.frexp(scaling)[0] != 0.5):
        return None
    base = base_layer.linear_in_compute_dtype(x)
    if base.dtype != x.dtype and x.dtype != torch.float32:
        base = base.to(x.dtype)  # PEFT's cast back; into float32 it is exact, and the addition makes it
    return torch.add(base, lora_b(lora_a(self.lora_dropout[name](x))), alpha=scaling)


def install_lean_lora(model: Any) -> int:
    """The lean forward on PEFT's 4-bit LoRA layers (``peft.tuners.lora.bnb.Linear4bit``) only: the only ones
    that clone, and whose dtype handling it copies (PEFT's bf16 ``lora.Linear`` casts differently). Needs a
    PEFT with ``lora_variant`` and ``_cast_input_dtype`` (0.16 and later); older ones keep their forward."""
    installed = 0
    for module in model.modules():
        if (type(module).__name__ == "Linear4bit" and type(module).__module__.startswith("peft.")
                and hasattr(module, "lora_variant") and hasattr(module, "_cast_input_dtype")
                and not hasattr(module, "_ent_peft_forward")):
            module._ent_peft_forward = module.forward
            module.forward = types.MethodType(_lean_forward, module)
            installed += 1
    return installed


# ---- the memory plan -------------------------------------------------------------------------------------
def _layer_bytes(layer: Any) -> tuple[int, int]:
    """(bytes a dequantisation of the layer's 4-bit weights adds: 2 per weight, the 4-bit copy stays for
    diagnostics; number of its 4-bit weights). (0, 0) without bitsandbytes."""
    try:
        from bitsandbytes.nn import Linear4bit
    except Exception:  # noqa: BLE001 - no 4-bit layers without bitsandbytes
        return 0, 0
    weights = 0
    for module in layer.modules():
        if isinstance(module, Linear4bit):
            weights += module.in_features * module.out_features
    return 2 * weights, weights


def device_budget_gib(device: Any, requested: float | None) -> float:
    if requested is not None:
        return float(requested)
    import torch

    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory / GIB
        return DEFAULT_BUDGET_GIB if total >= EIGHTY_GB_CARD_GIB else total * BUDGET_FRACTION
    return DEFAULT_BUDGET_GIB


def plan_speed(model: Any, loaded: Any, config: Any, mode: str, checkpointing: bool,
               budget_gib: float | None = None) -> SpeedPlan:
    """Decide what ``fast`` / ``low-memory`` do for this model, batch and device (no change made yet).

    The budget is ``config.memory_budget_gib`` (``--memory-budget``) unless ``budget_gib`` overrides it."""
    import torch

    from . import planning
    from .modeling import _module_at, causal_lm

    lm = causal_lm(model)
    layers = _module_at(lm, loaded.family.layers_path)
    n = len(layers)
    plan = SpeedPlan(mode=mode, layers=n, recomputed_layers=n if checkpointing else 0)
    if mode == "plain":
        return plan
    plan.fused_loss = fusable_head(lm)
    plan.lean_lora = True
    wanted = loaded.device.type == "cuda" if config.compile_layers == "auto" else config.compile_layers == "on"
    # diagnostics must run the layers eagerly (torch.compiler.set_stance, torch 2.6 and later)
    plan.compiled = wanted and hasattr(torch.compiler, "set_stance")
    if mode == "low-memory":
        return plan  # every layer recomputed as configured, nothing dequantised
    tokens = config.batch_size * config.seq_len
    shapes = planning._shapes(lm.config)
    lora_rank = _lora_rank(model)  # the adapter's own (a parent's with --init-adapter)
    lora_inputs = [module.get_base_layer().in_features for module in layers[0].modules()
                   if hasattr(module, "lora_A") and hasattr(module, "get_base_layer")]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    loaded_bytes = (torch.cuda.memory_allocated(loaded.device) if loaded.device.type == "cuda"
                    else sum(p.numel() * p.element_size() for p in model.parameters()))
    full = tokens * planning.layer_activation_bytes_per_token(shapes, lora_inputs, lora_rank)
    if plan.compiled:
        full = int(full * COMPILED_ACTIVATION_RATIO)
    kept_input = tokens * shapes.hidden * planning.CHECKPOINT_BYTES
    workspace = tokens * (planning.BACKWARD_WORKSPACE_H_BYTES * shapes.hidden
                          + planning.BACKWARD_WORKSPACE_I_BYTES * shapes.intermediate)
    loss = (LOSS_CHUNK_TOKENS * shapes.vocab * 12 + tokens * shapes.hidden * 8 + shapes.vocab * shapes.hidden * 2)
    training_state = trainable * (planning.LORA_GRAD_BYTES + planning.OPTIMIZER_STATE_BYTES
                                  + planning.LORA_AUTOCAST_COPY_BYTES + planning.OPTIMIZER_STEP_TEMP_BYTES)
    fixed = loaded_bytes + training_state + workspace + loss
    budget = device_budget_gib(loaded.device, config.memory_budget_gib if budget_gib is None else budget_gib) * GIB
    dequant_per_layer, _ = _layer_bytes(layers[0])

    selective = tokens * selective_bytes_per_token(shapes, len(lora_inputs), lora_rank)
    with_gemms = selective + tokens * gemm_output_bytes_per_token(shapes)

    def activations(kept: int, gemms: int, sac: int) -> int:
        """``kept`` whole layers, ``sac`` selective ones of which ``gemms`` keep their GEMM outputs."""
        recompute_workspace = full if kept < n else 0  # one layer's activations, rebuilt in its backward
        return (kept * full + gemms * with_gemms + (sac - gemms) * selective + (n - kept - sac) * kept_input
                + recompute_workspace)

    def fits(kept: int, gemms: int, sac: int) -> bool:
        return fixed + activations(kept, gemms, sac) <= budget

    # Per byte, a selective layer keeping its GEMM outputs saves the most time (a kept layer also keeps its
    # element-wise intermediates, cheap to recompute: 1.76 GB against 0.6 GB per layer on the 32B twin, for
    # about the same time), so: every layer whole if possible, else every layer at least selective with its
    # GEMM outputs and the rest of the memory for whole layers, else as many with GEMM outputs as fit,
    # else selective layers and full recomputation for the rest.
    if config.gradient_checkpointing == "on":
        kept, gemms, sac = 0, 0, 0
    elif config.gradient_checkpointing == "off" or not checkpointing or fits(n, 0, 0):  # nothing (to) recompute
        kept, gemms, sac = n, 0, 0
    elif fits(0, n, n):
        kept = next(k for k in range(n, -1, -1) if fits(k, n - k, n - k))
        gemms = sac = n - kept
    elif fits(0, 0, n):
        kept, sac = 0, n
        gemms = next(g for g in range(n, -1, -1) if fits(0, g, n))
    else:
        kept, gemms = 0, 0
        sac = next((s for s in range(n, -1, -1) if fits(0, 0, s)), 0)
    spare = budget - fixed - activations(kept, gemms, sac)
    dequantized = 0 if dequant_per_layer == 0 else int(min(n, max(0, spare // dequant_per_layer)))
    plan.selective_layers = sac
    plan.selective_gemm_layers = gemms
    plan.recomputed_layers = n - kept - sac
    plan.dequantized_layers = dequantized
    plan.budget_gib = round(budget / GIB, 2)
    plan.terms_gib = {k: round(v / GIB, 3) for k, v in {
        "loaded_model": loaded_bytes, "training_state": training_state, "backward_workspace": workspace,
        "fused_loss": loss, "activations": activations(kept, gemms, sac), "dequantized": dequantized * dequant_per_layer}.items()}
    plan.estimate_gib = round(sum(plan.terms_gib.values()), 2)
    return plan


def apply_speed(model: Any, loaded: Any, plan: SpeedPlan) -> SpeedPlan:
    """Carry out ``plan`` on a PEFT model whose checkpointing is enabled on every layer (or none)."""
    import gc

    import torch

    from .modeling import _module_at, causal_lm

    if plan.mode == "plain":
        return plan
    layers = _module_at(causal_lm(model), loaded.family.layers_path)
    kept = plan.layers - plan.recomputed_layers - plan.selective_layers
    if kept < plan.layers and not all(hasattr(layer, "gradient_checkpointing") for layer in layers):
        # transformers before 4.52 checkpoints the whole model, not layer by layer: record what happens
        plan.recomputed_layers, plan.selective_layers, plan.selective_gemm_layers, kept = plan.layers, 0, 0, 0
    for index, layer in enumerate(layers):
        if not hasattr(layer, "gradient_checkpointing"):
            continue
        if index < kept:
            layer.gradient_checkpointing = False
        elif index < kept + plan.selective_layers:
            policy = selective_policy(_lora_rank(model), keep_gemms=index < kept + plan.selective_gemm_layers)
            if plan.compiled:
                checkpoint_inside(layer, policy)
            else:
                layer._gradient_checkpointing_func = _CHECKPOINT_FUNCTIONS[policy]
    if kept == plan.layers and hasattr(causal_lm(model), "_require_grads_hook"):
        causal_lm(model).disable_input_require_grads()  # nothing is recomputed: the embeddings' output needs no gradient
    if plan.dequantized_layers:
        try:
            import bitsandbytes  # noqa: F401
        except Exception:  # noqa: BLE001
            plan.dequantized_layers = 0
        else:
            for layer in list(layers)[: plan.dequantized_layers]:
                dequantize_layer(layer)
            gc.collect()
            if loaded.device.type == "cuda":
                torch.cuda.empty_cache()
    if plan.lean_lora:
        install_lean_lora(model)
    if plan.compiled:
        compile_layers(layers)
    return plan


# ---- selective recomputation and compilation -------------------------------------------------------------
def selective_bytes_per_token(shapes: Any, adapted: int, lora_r: int) -> int:
    """What a layer under selective checkpointing keeps per token: its fp32 input, attention's bf16 output and
    fp32 log-sum-exp, and the adapters' rank-r down-projections."""
    h = shapes.hidden
    return int(4 * h + 2 * h + 4 * shapes.heads + 2 * lora_r * adapted)


def gemm_output_bytes_per_token(shapes: Any) -> int:
    """What keeping a layer's base GEMM outputs adds per token: the seven projections' bf16 outputs (all seven
    counted; a compiled layer may keep fewer, as its partitioner keeps only what its backward reads)."""
    h = shapes.hidden
    return int(2 * (3 * h + 2 * shapes.kv_width + 2 * shapes.intermediate))


def _lora_rank(model: Any) -> int:
    config = getattr(model, "peft_config", {}).get("default")
    return int(getattr(config, "r", 64))


QUANTIZED_GEMM = "bitsandbytes.gemm_4bit.default"  # bitsandbytes' 4-bit GEMM op, as torch names it


def selective_checkpoint_function(lora_rank: int, keep_gemms: bool = False) -> Any:
    """Non-reentrant checkpointing that keeps attention's results and the adapters' rank-r activations and
    recomputes the rest (the base GEMMs, norms, casts, rotary embeddings, dropout from the same RNG state,
    SwiGLU) in the backward pass; with ``keep_gemms`` it keeps the base GEMMs' outputs too (bitsandbytes' 4-bit
    GEMM, or a bf16 one), and the backward recomputes element-wise work only.
    """
    import torch
    from torch.utils.checkpoint import (
        CheckpointPolicy,
        checkpoint,
        create_selective_checkpoint_contexts,
    )

    aten = torch.ops.aten
    attention = {getattr(aten, name).default for name in (
        "_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention",
        "_scaled_dot_product_cudnn_attention", "_flash_attention_forward", "_efficient_attention_forward")
        if hasattr(aten, name)}
    gemms = {aten.mm.default, aten.addmm.default}

    def policy(_ctx: Any, op: Any, *args: Any, **_kwargs: Any) -> Any:
        if op in attention:
            return CheckpointPolicy.MUST_SAVE
        if op in gemms:
            if args[-1].shape[-1] <= lora_rank:  # an adapter's down-projection: r outputs
                return CheckpointPolicy.MUST_SAVE
            if keep_gemms and args[-2].shape[-1] > lora_rank:  # a base GEMM (not an adapter's up-projection)
                return CheckpointPolicy.MUST_SAVE
        if keep_gemms and str(op) == QUANTIZED_GEMM:  # by name: bitsandbytes may be imported after this
            return CheckpointPolicy.MUST_SAVE
        return CheckpointPolicy.PREFER_RECOMPUTE

    return functools.partial(checkpoint, use_reentrant=False,
                             context_fn=functools.partial(create_selective_checkpoint_contexts, policy))


def selective_policy(lora_rank: int, keep_gemms: bool) -> str:
    """The name of a selective checkpoint policy, its function made once (:data:`_CHECKPOINT_FUNCTIONS`):
    one function object per policy, so compiled layers with the same policy share one graph."""
    policy = f"selective{'+gemms' if keep_gemms else ''}/r{lora_rank}"
    if policy not in _CHECKPOINT_FUNCTIONS:
        _CHECKPOINT_FUNCTIONS[policy] = selective_checkpoint_function(lora_rank, keep_gemms)
    return policy


def checkpoint_inside(layer: Any, policy: str) -> None:
    """Checkpoint ``layer`` inside its own forward instead of around its call.

    transformers (before 5.2x) checkpoints a layer in ``__call__``, outside the module's compiled forward, so
    a compiled layer is recomputed whole: every GEMM, including the o and down projections whose outputs its
    backward never reads. Inside the forward, torch.compile sees the checkpoint and its policy, and its
    partitioner recomputes only what the backward needs. Same values: the selective policy is unchanged.

    ``policy`` (:func:`selective_policy`) names the checkpoint function and is read in the forward:
    torch.compile guards on it, so layers with different policies get different graphs (it does not tell two
    closures of one function apart).
    """
    import torch

    layer.gradient_checkpointing = False  # transformers' own checkpointing, in __call__ or forward, stays off
    layer._ent_checkpoint_policy = policy
    layer_forward = type(layer).forward

    def forward(*args: Any, **kwargs: Any) -> Any:
        if not (layer.training and torch.is_grad_enabled()):
            return layer_forward(layer, *args, **kwargs)
        function = _CHECKPOINT_FUNCTIONS[layer._ent_checkpoint_policy]
        return function(functools.partial(layer_forward, layer, **kwargs), *args)

    layer.forward = forward


_CHECKPOINT_FUNCTIONS: dict[str, Any] = {}
"""Selective checkpoint functions by policy name (:func:`selective_policy`)."""


def compile_layers(layers: Any) -> None:
    """torch.compile each decoder layer for training. Diagnostics run them eagerly
    (:func:`ent_harness.modeling.terminal_activations`), so the measured geometry does not depend on it."""
    import torch

    dynamo = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):  # kept, two selective policies, recomputed: 4 graphs
        if hasattr(dynamo, name):
            setattr(dynamo, name, max(getattr(dynamo, name), 16))
    for layer in layers:
        layer.compile()
