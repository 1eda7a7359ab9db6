"""Llama (``LlamaForCausalLM``): CodeLlama, DeepSeek-Coder and Llama-3.1.

Terminal layer: last decoder block after the final RMSNorm, mean over non-padding tokens. No linear has a
bias. None of these base tokenizers defines a pad token: the loader adds one distinct from EOS.
"""

from ent_harness.specs import FamilySpec

LLAMA = FamilySpec(
    name="llama",
    architecture="LlamaForCausalLM",
    description="Llama decoder (CodeLlama, DeepSeek-Coder, Llama-3.1)",
)
