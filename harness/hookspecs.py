"""The hook specifications: the whole plugin API of ent.

Every hook is a registration hook: it is called once, when the plugin manager loads plugins (at the start
of every command that needs components), with a ``register`` callback. A plugin calls ``register(spec)``
once per component it provides, with a frozen spec object from :mod:`ent_harness.specs`. Specs validate
themselves, so a bad spec fails at load time and the plugin is reported broken; components are looked up
by name afterwards and their code (named by lazy ``"module:attr"`` targets) is imported only when used.

Built-in plugins (``ent_plugins.*``) register through these same hooks. Third-party packages expose a
module with ``@hookimpl`` functions under the entry-point group ``ent``::

    [project.entry-points.ent]
    my_models = "my_package.ent_plugin"
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .specs import CompanionSpec, ExecutorSpec, ExperimentSpec, FamilySpec, MetricSpec, ModelSpec, ProbeSetSpec

PROJECT_NAME = "ent"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_families(register: Callable[[FamilySpec], None]) -> None:
    """Register model families (phase: load).

    A family is keyed by the exact ``config.architectures[0]`` of the models it serves (for example
    ``Qwen2ForCausalLM``) and says where decoder layers and the final norm live, which layer is terminal
    and how it is pooled, which linear modules LoRA targets, the tokenizer padding side and the
    quantisation compute dtype. Call ``register(FamilySpec(...))`` once per family. Returns nothing.
    """


@hookspec
def register_models(register: Callable[[ModelSpec], None]) -> None:
    """Register model loaders (phase: load).

    Call ``register(ModelSpec(...))`` once per model: its name (``ent run --model NAME``), a lazy target
    returning its ``transformers`` config, its hub id for real weights and/or a tokenizer target, and
    optionally the offline tokenizer of its shape twin (``twin_tokenizer``). The family serving it is found
    from the config's architecture. Returns nothing.
    """


@hookspec
def register_companions(register: Callable[[CompanionSpec], None]) -> None:
    """Register companion datasets (phase: load).

    A companion is a document stream mixed with the primary code stream (``--companion NAME``). Call
    ``register(CompanionSpec(...))`` with a lazy ``documents`` target ``f(seed, offline) -> Iterator[str]``.
    Returns nothing.
    """


@hookspec
def register_probe_sets(register: Callable[[ProbeSetSpec], None]) -> None:
    """Register labelled probe sets (phase: load).

    Call ``register(ProbeSetSpec(...))`` with a lazy ``probes`` target ``f() -> list[Probe]``. The
    activations of a probe set's texts are what every metric reads. Returns nothing.
    """


@hookspec
def register_metrics(register: Callable[[MetricSpec], None]) -> None:
    """Register geometry metrics (phase: load).

    Call ``register(MetricSpec(...))`` with a lazy ``compute`` target ``f(analysis) -> dict``: it receives
    the shared :class:`ent_harness.geometry.GeometryAnalysis` of one checkpoint's probe activations and
    returns JSON-friendly values under the keys the spec lists. Every registered metric runs at every
    diagnostic step. Returns nothing.
    """


@hookspec
def register_experiments(register: Callable[[ExperimentSpec], None]) -> None:
    """Register experiments (phase: load).

    Call ``register(ExperimentSpec(...))`` with a lazy ``run`` target. An experiment launches the runs it
    needs through the run machinery and builds its tables from run directories. Returns nothing.
    """


@hookspec
def register_executors(register: Callable[[ExecutorSpec], None]) -> None:
    """Register sweep executors (phase: load).

    An executor runs the expanded runs of ``ent sweep`` somewhere: one after another or one per GPU on this
    machine, as Ray tasks, as SLURM jobs. Call ``register(ExecutorSpec(...))`` with a lazy ``execute``
    target ``f(tasks, context) -> list[dict]`` that calls ``context.runner(task, gpu)`` once per task
    where the run should happen. Returns nothing.
    """


# Hook name -> component kind it registers (the order is the order of `ent list-plugins`).
REGISTRATION_HOOKS: dict[str, str] = {
    "register_models": "model",
    "register_families": "family",
    "register_companions": "companion",
    "register_probe_sets": "probe_set",
    "register_metrics": "metric",
    "register_experiments": "experiment",
    "register_executors": "executor",
}
