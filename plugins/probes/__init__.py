"""Built-in probe sets: two independent sets of one balanced domain x register x shape design."""

from collections.abc import Callable

from ent_harness.hookspecs import hookimpl
from ent_harness.specs import ProbeSetSpec

CONCEPTS = ("domain", "register", "shape")


@hookimpl
def register_probe_sets(register: Callable[[ProbeSetSpec], None]) -> None:
    for version in ("v1", "v2"):
        register(
            ProbeSetSpec(
                name=f"factorial-{version}",
                description="domain {code, math, medical, prose} x register {formal, casual} x "
                "shape {question, instruction, statement, list}, 6 probes per cell (192)",
                probes=f"ent_plugins.probes.builtin:factorial_{version}",
                concepts=CONCEPTS,
            )
        )
