"""``ent plan``: parameter counts on the meta device and a memory model for 4-bit QLoRA training.

Counting builds the model from its config on the meta device (no memory, no download) and sums
``parameters()``, so tied weights count once. The memory model adds up, in bytes, every tensor that a
QLoRA training step as ``ent run`` performs it on a CUDA GPU holds at its peak; docs/models.md derives each
term. All constants are module-level names so that GPU measurements (bench/zoo_gpu.py) can calibrate them.

Notation: ``h`` hidden size, ``kv`` key/value width (KV heads x head dim), ``I`` intermediate size, ``H``
attention heads, ``V`` vocabulary rows, ``n`` decoder layers, ``r`` LoRA rank, ``T = batch x seq_len``
tokens per micro-batch, ``P`` LoRA parameters.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

GIB = float(1 << 30)

# ---- weights ----------------------------------------------------------------------------------------
NF4_BLOCK = 64  # weights per first-level block (one absmax each)
NF4_NESTED_BLOCK = 256  # first-level absmax values per second-level block (double quantisation)
NF4_BYTES_PER_PARAM = 0.5 + 1.0 / NF4_BLOCK + 4.0 / (NF4_BLOCK * NF4_NESTED_BLOCK)
"""4-bit code (0.5 B) + the block's absmax quantised to 8 bits (1 B / 64 weights) + one fp32 absmax per
256 blocks (4 B / 16,384 weights) = 0.515869 bytes per quantised weight."""
NF4_BYTES_PER_TENSOR = 64 + 1024 + 4
"""Per quantised matrix: the 16-value NF4 code (fp32), the 256-value code of the nested absmax (fp32), offset."""
NON_QUANTIZED_BYTES = 4
"""Embeddings, an untied lm_head, norms and biases: PEFT's ``prepare_model_for_kbit_training`` upcasts every
non-4-bit parameter to float32."""

# ---- LoRA and the optimiser ---------------------------------------------------------------------------
LORA_PARAM_BYTES = 4  # fp32 adapter weights
LORA_GRAD_BYTES = 4  # fp32 gradients (from the first backward pass until zero_grad)
OPTIMIZER_STATE_BYTES = 8  # AdamW exp_avg + exp_avg_sq, fp32 (paged AdamW keeps the same in managed memory)
OPTIMIZER_STEP_TEMP_BYTES = 4  # torch's foreach AdamW: one fp32 temporary per parameter during step()
LORA_AUTOCAST_COPY_BYTES = 2  # bf16 casts of the adapter weights that autocast caches during the forward pass

# ---- activations (bytes per token) --------------------------------------------------------------------
# Saved for backward by one decoder layer, without checkpointing, with the residual stream in fp32 (the
# embedding and norms are fp32 after k-bit preparation) and autocast bf16 matmuls:
ACT_RESIDUAL_BYTES = 8  # the inputs of the two RMSNorms (fp32 residual stream), 4 h each
ACT_NORM_STAT_BYTES = 8  # the two per-token rsqrt statistics (fp32)
ACT_ATTENTION_Q_OUT_BYTES = 4  # SDPA's bf16 query and output, 2 h each
ACT_ATTENTION_KV_BYTES = 4  # SDPA's bf16 key and value, 2 kv each (native GQA, no repeat)
ACT_ATTENTION_LSE_BYTES = 4  # SDPA's fp32 log-sum-exp, one per head
ACT_MLP_BYTES = 12  # fp32 gate output (SiLU input), SiLU output and up output, 4 I each
ACT_LORA_INPUT_BYTES = 3  # per adapted linear and input feature: dropout mask (bool, 1) + bf16 input of lora_A (2)
ACT_LORA_RANK_BYTES = 2  # per adapted linear: lora_A's bf16 output (input of lora_B), r values
CHECKPOINT_BYTES = 4  # with gradient checkpointing, each layer keeps only its fp32 input: 4 h
FINAL_NORM_BYTES = 4  # the final norm's saved fp32 input: 4 h
BACKWARD_WORKSPACE_H_BYTES = 8  # gradients in flight through one layer: residual-stream gradient in and out
BACKWARD_WORKSPACE_I_BYTES = 12  # and the three fp32 MLP-intermediate gradients, 4 I each

# ---- the language-model head ------------------------------------------------------------------------
LOGITS_FORWARD_BYTES = 10  # per logit (T x V): bf16 logits (2) + their fp32 upcast (4) + fp32 log-softmax (4)
LOGITS_BACKWARD_BYTES = 12  # saved log-softmax (4) + its incoming gradient (4) + the gradient it produces (4)
LM_HEAD_COPY_BYTES = 2  # autocast's bf16 copy of the fp32 lm_head weight, saved for the backward pass
DEQUANT_BYTES = 2  # one 4-bit matrix dequantised to bf16 for its matmul (the largest one bounds it)

# ---- outside the tensors --------------------------------------------------------------------------------
CUDA_CONTEXT_GIB = 0.6  # CUDA context, cuBLAS/cuDNN workspaces and kernels: outside torch's allocator
ALLOCATOR_OVERHEAD = 0.05  # caching-allocator fragmentation: reserved / allocated - 1 at the peak


@dataclass(frozen=True)
class Shapes:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool

    @property
    def kv_width(self) -> int:
        return self.kv_heads * self.head_dim


@dataclass(frozen=True)
class ParameterCounts:
    """Parameter counts of one model (``parameters()``, tied weights once) and of its LoRA adapter."""

    total: int
    embedding: int  # the input embedding
    lm_head: int  # 0 when tied to the embedding
    per_layer: int  # one decoder layer
    layers: int
    other: int  # final norm and anything outside the layers, embedding and head
    quantized: int  # weights of the linears a 4-bit load replaces by Linear4bit
    quantized_tensors: int
    not_quantized: int
    largest_linear: int
    lora_trainable: int
    lora_modules: int
    lora_per_layer: int


def _shapes(config: Any) -> Shapes:
    hidden = int(config.hidden_size)
    heads = int(config.num_attention_heads)
    head_dim = int(getattr(config, "head_dim", None) or hidden // heads)
    return Shapes(hidden, int(config.intermediate_size), int(config.num_hidden_layers), heads,
                  int(getattr(config, "num_key_value_heads", None) or heads), head_dim, int(config.vocab_size),
                  bool(getattr(config, "tie_word_embeddings", False)))


def meta_model(config: dict[str, Any]) -> Any:
    """The causal LM of ``config`` on the meta device (shapes only; builds in well under a second)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from .modeling import quiet_libraries

    quiet_libraries()
    hf_config = AutoConfig.for_model(**config)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf_config)
    model.tie_weights()
    return model


def count_parameters(config: dict[str, Any], lora_targets: tuple[str, ...], lora_r: int,
                     layers_path: str = "model.layers") -> tuple[ParameterCounts, Shapes, list[int]]:
    """Counts on the meta device; also the shapes and the input widths of one layer's adapted linears."""
    import torch

    model = meta_model(config)
    shapes = _shapes(model.config)
    total = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight.numel()
    head = model.get_output_embeddings()
    lm_head = 0 if head is None or head.weight is model.get_input_embeddings().weight else head.weight.numel()
    layers = model.get_submodule(layers_path)
    per_layer = sum(p.numel() for p in layers[0].parameters())
    quantized = quantized_tensors = largest = 0
    lora = lora_modules = 0
    lora_inputs: list[int] = []
    layer_prefix = layers_path + "."
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or module is head:
            continue
        quantized += module.weight.numel()
        quantized_tensors += 1
        largest = max(largest, module.weight.numel())
        if name.startswith(layer_prefix) and name.rsplit(".", 1)[-1] in lora_targets:
            lora += lora_r * (module.in_features + module.out_features)
            lora_modules += 1
            if name.startswith(f"{layers_path}.0."):
                lora_inputs.append(module.in_features)
    counts = ParameterCounts(
        total=total, embedding=embedding, lm_head=lm_head, per_layer=per_layer, layers=len(layers),
        other=total - embedding - lm_head - per_layer * len(layers), quantized=quantized,
        quantized_tensors=quantized_tensors, not_quantized=total - quantized, largest_linear=largest,
        lora_trainable=lora, lora_modules=lora_modules, lora_per_layer=lora // max(1, len(layers)),
    )
    return counts, shapes, lora_inputs


def layer_activation_bytes_per_token(shapes: Shapes, lora_inputs: list[int], lora_r: int) -> int:
    """Bytes one decoder layer saves for backward per token (no checkpointing); docs/models.md derives it."""
    h, kv, inter = shapes.hidden, shapes.kv_width, shapes.intermediate
    base = (ACT_RESIDUAL_BYTES * h + ACT_NORM_STAT_BYTES + ACT_ATTENTION_Q_OUT_BYTES * h
            + ACT_ATTENTION_KV_BYTES * kv + ACT_ATTENTION_LSE_BYTES * shapes.heads + ACT_MLP_BYTES * inter)
    lora = sum(ACT_LORA_INPUT_BYTES * width + ACT_LORA_RANK_BYTES * lora_r for width in lora_inputs)
    return int(base + lora)


def estimate_memory(counts: ParameterCounts, shapes: Shapes, lora_inputs: list[int], batch: int, seq_len: int,
                    lora_r: int) -> dict[str, Any]:
    """Every term of the peak GPU memory of a QLoRA step, in bytes, with and without checkpointing."""
    tokens = batch * seq_len
    h, inter, vocab, n = shapes.hidden, shapes.intermediate, shapes.vocab, shapes.layers
    lora = counts.lora_trainable
    terms: dict[str, float] = {
        "weights_4bit": counts.quantized * NF4_BYTES_PER_PARAM + counts.quantized_tensors * NF4_BYTES_PER_TENSOR,
        "weights_not_quantized": counts.not_quantized * NON_QUANTIZED_BYTES,
        "lora_params": lora * LORA_PARAM_BYTES,
        "optimizer_states": lora * OPTIMIZER_STATE_BYTES,
        "lora_grads": lora * LORA_GRAD_BYTES,
        "lora_autocast_copies": lora * LORA_AUTOCAST_COPY_BYTES,
        "optimizer_step_temp": lora * OPTIMIZER_STEP_TEMP_BYTES,
        "lm_head_bf16_copy": vocab * h * LM_HEAD_COPY_BYTES,
        "layer_activations": tokens * layer_activation_bytes_per_token(shapes, lora_inputs, lora_r),
        "checkpoints": tokens * h * CHECKPOINT_BYTES * n,
        "final_norm_input": tokens * h * FINAL_NORM_BYTES,
        "logits_forward": tokens * vocab * LOGITS_FORWARD_BYTES,
        "logits_backward": tokens * vocab * LOGITS_BACKWARD_BYTES,
        "backward_workspace": tokens * (BACKWARD_WORKSPACE_H_BYTES * h + BACKWARD_WORKSPACE_I_BYTES * inter),
        "dequant_workspace": counts.largest_linear * DEQUANT_BYTES,
    }
    static = terms["weights_4bit"] + terms["weights_not_quantized"] + terms["lora_params"] + terms["optimizer_states"]
    head = terms["lm_head_bf16_copy"] + terms["final_norm_input"]
    stored_gc = terms["checkpoints"]
    stored_full = terms["layer_activations"] * n
    phases_gc = {
        "forward_end": stored_gc + head + terms["lora_autocast_copies"] + terms["logits_forward"],
        "loss_backward": stored_gc + head + terms["logits_backward"],
        "layers_backward": (max(stored_gc, terms["lora_grads"]) + terms["layer_activations"]
                            + terms["backward_workspace"]),
        "optimizer_step": terms["lora_grads"] + terms["optimizer_step_temp"],
    }
    phases_full = {
        "forward_end": stored_full + head + terms["lora_autocast_copies"] + terms["logits_forward"],
        "loss_backward": stored_full + head + terms["lora_autocast_copies"] + terms["logits_backward"],
        "layers_backward": stored_full + terms["lora_grads"] + terms["backward_workspace"],
        "optimizer_step": terms["lora_grads"] + terms["optimizer_step_temp"],
    }
    context = CUDA_CONTEXT_GIB * GIB
    result: dict[str, Any] = {"terms": {k: int(v) for k, v in terms.items()}, "static": int(static)}
    for label, phases in (("with_checkpointing", phases_gc), ("without_checkpointing", phases_full)):
        peak_phase = max(phases, key=lambda k: phases[k])
        allocated = static + phases[peak_phase] + terms["dequant_workspace"]
        overhead = allocated * ALLOCATOR_OVERHEAD
        result[label] = {
            "phases": {k: int(v) for k, v in phases.items()},
            "peak_phase": peak_phase,
            "activations": int(phases[peak_phase]),
            "allocated": int(allocated),
            "allocator_overhead": int(overhead),
            "cuda_context": int(context),
            "total": int(allocated + overhead + context),
        }
    return result


def constants() -> dict[str, float]:
    """The memory model's constants by name (recorded with every plan and benchmark)."""
    return {name: value for name, value in globals().items()
            if name.isupper() and isinstance(value, (int, float)) and name != "GIB"}


def plan(spec: Any, registry: Any, batch: int = 4, seq_len: int = 1024, lora_r: int = 64) -> dict[str, Any]:
    """Everything ``ent plan`` reports for model plugin ``spec``."""
    from .errors import EntError
    from .modeling import family_for_config, model_config

    for flag, value in (("--batch", batch), ("--seq-len", seq_len), ("--lora-r", lora_r)):
        if value < 1:
            raise EntError(f"{flag} must be a positive integer, got {value}")
    config = model_config(spec)
    family = family_for_config(registry, config, f"model '{spec.name}'")
    counts, shapes, lora_inputs = count_parameters(config, tuple(family.lora_targets), lora_r, family.layers_path)
    memory = estimate_memory(counts, shapes, lora_inputs, batch, seq_len, lora_r)
    return {
        "model": spec.name,
        "hub_id": spec.hub_id,
        "architecture": config["architectures"][0],
        "family": family.name,
        "total_params": counts.total,
        "trainable_params": counts.lora_trainable,
        "params": asdict(counts),
        "shapes": asdict(shapes),
        "settings": {"batch": batch, "seq_len": seq_len, "lora_r": lora_r, "lora_targets": list(family.lora_targets),
                     "quantization": f"{family.quant_type}, double quantisation {family.double_quant}, "
                                     f"{family.compute_dtype} compute", "dtype_activations": "autocast bf16"},
        "memory": memory,
        "constants": constants(),
    }
