"""Qwen2 (``Qwen2ForCausalLM``): every Qwen2.5-Coder size.

Terminal layer: the last decoder block's output after the final RMSNorm (``model.norm``), mean-pooled over
non-padding tokens. q/k/v carry biases (hard-wired in ``Qwen2Attention``); LoRA targets the seven linears.
The base models use one token for BOS and EOS (151643) and ship no pad token: the loader adds a pad
token distinct from EOS, so EOS stays visible to the loss.
"""

from ent_harness.specs import FamilySpec

QWEN2 = FamilySpec(
    name="qwen2",
    architecture="Qwen2ForCausalLM",
    description="Qwen2 / Qwen2.5-Coder decoder (GQA, q/k/v bias)",
)
