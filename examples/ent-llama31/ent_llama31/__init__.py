"""ent model plugin: Meta Llama-3.1-8B (base), a third-party distribution of its own.

It registers one model, ``llama-3.1-8b``, through the ``ent`` entry-point group (see pyproject.toml). The
architecture (``LlamaForCausalLM``) is served by ent's built-in ``llama`` family, so the plugin only names
the hub id and ships the exact config.json, which ``ent plan`` and shape twins (``--random-weights``) use
without downloading the gated weights.
"""

from __future__ import annotations

from pathlib import Path

from ent_harness.hookspecs import hookimpl
from ent_harness.specs import ModelSpec

CONFIG = Path(__file__).resolve().parent / "configs" / "llama-3.1-8b.json"


def config() -> Path:
    """The lazy ``config`` target: the path of Llama-3.1-8B's config.json (package data)."""
    return CONFIG


@hookimpl
def register_models(register):
    register(
        ModelSpec(
            name="llama-3.1-8b",
            description="Meta Llama-3.1 8B base (8.03B parameters, GQA, llama3 RoPE scaling; gated on the hub)",
            config="ent_llama31:config",
            hub_id="meta-llama/Llama-3.1-8B",
        )
    )
