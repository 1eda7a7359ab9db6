"""Built-in text streams: the primary ``code`` stream and the companions mixed with it.

Offline sources only read text that is already on the machine or generate it, so runs work with no
network. (Streaming the public datasets named in each spec for real runs is added by the data issue.)
"""

from collections.abc import Callable

from ent_harness.hookspecs import hookimpl
from ent_harness.specs import CompanionSpec


@hookimpl
def register_companions(register: Callable[[CompanionSpec], None]) -> None:
    register(
        CompanionSpec(
            name="code",
            description="primary stream: Python source code",
            documents="ent_plugins.companions.offline:python_source_documents",
            offline_source="the Python standard library's own source files, read at run time",
        )
    )
    register(
        CompanionSpec(
            name="nl",
            description="natural language (condition B3)",
            documents="ent_plugins.companions.offline:english_prose_documents",
            offline_source="English prose of the Python documentation's topic pages shipped with CPython (pydoc_data)",
        )
    )
    register(
        CompanionSpec(
            name="math",
            description="mathematics (condition B2)",
            documents="ent_plugins.companions.offline:worked_math_documents",
            offline_source="worked arithmetic and algebra problems generated procedurally from the seed",
        )
    )
    register(
        CompanionSpec(
            name="none",
            description="no companion: code only",
            documents="ent_plugins.companions.offline:no_documents",
            offline_source="(empty)",
        )
    )
