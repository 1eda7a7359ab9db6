"""Mistral (``MistralForCausalLM``): Mistral-7B-v0.3.

- Layers ``model.layers``, final norm ``model.norm``. Terminal layer: the last decoder block after the final
  RMSNorm, mean over non-padding tokens (the default). GQA (8 key/value heads), no biases; v0.3 sets
  ``sliding_window`` to null (full attention).
- LoRA targets the seven linears of every layer (``q/k/v/o_proj``, ``gate/up/down_proj``).
- Tokenizer: right padding. The tokenizer has no pad token; the loader pads with ``<unk>`` (id 0), never
  with EOS (id 2).
- Quantisation: NF4, double quantisation, bf16 compute; ``lm_head`` and the embedding stay unquantised.
"""

from ent_harness.specs import FamilySpec

MISTRAL = FamilySpec(
    name="mistral",
    architecture="MistralForCausalLM",
    description="Mistral decoder (GQA)",
    pad_tokens=("<unk>",),
)
