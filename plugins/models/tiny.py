"""The embedded tiny models: the real architecture classes at toy size, random weights, no download.

They are the default of the README's demo and of the tests: every code path of a real run (4-bit loading,
LoRA on the seven linears, terminal-layer pooling) runs on them in seconds on a CPU.
"""

from __future__ import annotations

from typing import Any

from .byte_tokenizer import EOS_ID, PAD_ID

_COMMON: dict[str, Any] = {
    "vocab_size": 320,
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 1024,
    "rms_norm_eps": 1e-6,
    "hidden_act": "silu",
    "initializer_range": 0.02,
    "tie_word_embeddings": False,
    "bos_token_id": EOS_ID,
    "eos_token_id": EOS_ID,
    "pad_token_id": PAD_ID,
    "rope_theta": 10000.0,
}


def qwen2_config() -> dict[str, Any]:
    return {**_COMMON, "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "use_sliding_window": False}


def llama_config() -> dict[str, Any]:
    return {**_COMMON, "architectures": ["LlamaForCausalLM"], "model_type": "llama", "attention_bias": False}


def mistral_config() -> dict[str, Any]:
    return {**_COMMON, "architectures": ["MistralForCausalLM"], "model_type": "mistral", "sliding_window": None}
