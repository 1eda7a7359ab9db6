"""Qwen2 (``Qwen2ForCausalLM``): every Qwen2.5-Coder size (0.5B to 32B).

- Layers ``model.layers``, final norm ``model.norm``. Terminal layer: the last decoder block's output after
  the final RMSNorm, mean-pooled over non-padding tokens (the default).
- LoRA targets the seven linears of every layer: ``q_proj``, ``k_proj``, ``v_proj``, ``o_proj``,
  ``gate_proj``, ``up_proj``, ``down_proj``. q/k/v carry biases (hard-wired in ``Qwen2Attention``; they are
  not quantised and not trained). The 0.5B, 1.5B and 3B models tie ``lm_head`` to the embedding.
- Tokenizer: right padding. The base models use one token for BOS and EOS (151643) and their tokenizer pads
  with that same token; the loader replaces the pad by ``<|fim_pad|>`` (151662), a fill-in-the-middle
  control token that ordinary code never contains, so masking padding never hides EOS from the loss.
- Quantisation: NF4, double quantisation, bf16 compute; ``lm_head`` and the embedding stay unquantised.
"""

from ent_harness.specs import FamilySpec

QWEN2 = FamilySpec(
    name="qwen2",
    architecture="Qwen2ForCausalLM",
    description="Qwen2 / Qwen2.5-Coder decoder (GQA, q/k/v bias)",
    pad_tokens=("<|fim_pad|>",),
)
