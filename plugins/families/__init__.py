"""Built-in model families, one small module each, keyed by the exact ``config.architectures[0]``."""

from collections.abc import Callable

from ent_harness.hookspecs import hookimpl
from ent_harness.specs import FamilySpec

from .llama import LLAMA
from .mistral import MISTRAL
from .qwen2 import QWEN2


@hookimpl
def register_families(register: Callable[[FamilySpec], None]) -> None:
    for family in (QWEN2, LLAMA, MISTRAL):
        register(family)
