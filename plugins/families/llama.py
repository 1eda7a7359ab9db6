"""Llama (``LlamaForCausalLM``): CodeLlama-7B, DeepSeek-Coder-6.7B and Llama-3.1-8B.

- Layers ``model.layers``, final norm ``model.norm``. Terminal layer: the last decoder block after the final
  RMSNorm, mean over non-padding tokens (the default). No linear has a bias.
- LoRA targets the seven linears of every layer (``q/k/v/o_proj``, ``gate/up/down_proj``).
- Tokenizer: right padding. None of these base tokenizers defines a pad token distinct from EOS; the loader
  takes ``<|finetune_right_pad_id|>`` (Llama-3.1, id 128004), else ``<unk>`` (CodeLlama, id 0), else adds a
  pad token in one of the embedding's spare rows (DeepSeek-Coder: 32,256 rows for about 32,022 tokens).
- Quantisation: NF4, double quantisation, bf16 compute; ``lm_head`` and the embedding stay unquantised.
"""

from ent_harness.specs import FamilySpec

LLAMA = FamilySpec(
    name="llama",
    architecture="LlamaForCausalLM",
    description="Llama decoder (CodeLlama, DeepSeek-Coder, Llama-3.1)",
    pad_tokens=("<|finetune_right_pad_id|>", "<unk>"),
)
