"""Built-in experiments: one per row of the protocol's experiment table (protocol.md, "Experiments")."""

from collections.abc import Callable

from ent_harness.hookspecs import hookimpl
from ent_harness.specs import ExperimentSpec

_PAPER = "ent_plugins.experiments.paper"

EXPERIMENTS = (
    ("dynamics", "B3 (nl) and B2 (math) over N seeds on one model: collapse, trajectory and SV tables (paper 4)"),
    ("margin", "non-degeneracy margin, EI, domain accuracy and V-purity of base models (hypothesis A, Table 4)"),
    ("scale-ladder", "B3 on every Qwen2.5-Coder size, 0.5B to 32B (hypothesis C, Table 5)"),
    ("composition", "cross-domain battery on base models, prose domain included (hypothesis B, Table 6)"),
    ("cross-architecture", "B3 on CodeLlama, DeepSeek-Coder, Qwen-7B, Mistral and Qwen-32B (Table 7)"),
    ("reversibility", "B3, then its adapter continued under B2 (or --companion), tracking EI (paper 9)"),
)


@hookimpl
def register_experiments(register: Callable[[ExperimentSpec], None]) -> None:
    for name, description in EXPERIMENTS:
        register(ExperimentSpec(name=name, description=description, run=f"{_PAPER}:{name.replace('-', '_')}"))
