"""Mistral (``MistralForCausalLM``): Mistral-7B-v0.3.

Terminal layer: last decoder block after the final RMSNorm, mean over non-padding tokens. GQA, no biases;
v0.3 sets ``sliding_window`` to null (full attention).
"""

from ent_harness.specs import FamilySpec

MISTRAL = FamilySpec(
    name="mistral",
    architecture="MistralForCausalLM",
    description="Mistral decoder (GQA)",
)
