"""Built-in text streams: the primary ``code`` stream and the companions mixed with it.

Each names a public dataset streamed with the ``datasets`` library for real runs and an offline source
used with ``--offline`` or when the hub cannot be reached (see docs/companions.md). Registration imports
nothing heavy: the documents functions are named lazily.
"""

from collections.abc import Callable

from ent_harness.hookspecs import hookimpl
from ent_harness.specs import CompanionSpec

from .sources import DATASETS, OFFLINE_LABELS


@hookimpl
def register_companions(register: Callable[[CompanionSpec], None]) -> None:
    register(
        CompanionSpec(
            name="code",
            description="primary stream: Python source code",
            documents="ent_plugins.companions.sources:code_documents",
            dataset=DATASETS["code"],
            offline_source="the Python standard library's own source files, read at run time",
        )
    )
    register(
        CompanionSpec(
            name="nl",
            description="natural language (condition B3)",
            documents="ent_plugins.companions.sources:nl_documents",
            dataset=DATASETS["nl"],
            offline_source=OFFLINE_LABELS["nl"],
        )
    )
    register(
        CompanionSpec(
            name="math",
            description="mathematics (condition B2)",
            documents="ent_plugins.companions.sources:math_documents",
            dataset=DATASETS["math"],
            offline_source=OFFLINE_LABELS["math"],
        )
    )
    register(
        CompanionSpec(
            name="creative",
            description="creative writing: stories and poems",
            documents="ent_plugins.companions.sources:creative_documents",
            dataset=DATASETS["creative"],
            offline_source=OFFLINE_LABELS["creative"],
        )
    )
    register(
        CompanionSpec(
            name="none",
            description="no companion: code only",
            documents="ent_plugins.companions.sources:none_documents",
            offline_source="(empty)",
        )
    )
