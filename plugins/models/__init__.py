"""Built-in model plugins: the embedded tiny models and the shipped zoo (docs/models.md)."""

from collections.abc import Callable

from ent_harness.hookspecs import hookimpl
from ent_harness.specs import ModelSpec

from .zoo import ZOO, target_of

# A tiny run is a demo of the whole protocol in about a minute on two CPU cores.
TINY_RUN_DEFAULTS = {"steps": 200, "diag_every": 50, "seq_len": 128, "batch_size": 4, "warmup_steps": 10}


@hookimpl
def register_models(register: Callable[[ModelSpec], None]) -> None:
    for family in ("qwen2", "llama", "mistral"):
        register(
            ModelSpec(
                name=f"tiny-{family}",
                description=f"embedded {family} architecture at toy size (4 layers, width 128), random weights",
                config=f"ent_plugins.models.tiny:{family}_config",
                tokenizer="ent_plugins.models.byte_tokenizer:build_byte_tokenizer",
                random_seed=1234,
                embedded=True,
                run_defaults=TINY_RUN_DEFAULTS,
            )
        )
    for model in ZOO:
        register(ModelSpec(name=model.name, description=model.description, config=target_of(model.name),
                           hub_id=model.hub_id, twin_tokenizer=model.twin_tokenizer))
