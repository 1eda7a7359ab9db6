"""Frozen, validated spec objects that plugins register.

A spec describes a component without importing anything heavy: code is named by a lazy ``"module:attr"``
target, resolved only when the component is used, so ``ent list-plugins`` never imports torch. Specs check
themselves on construction, so a bad plugin fails when it registers, not an hour into a run.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .errors import PluginSpecError

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
TARGET_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def resolve_target(target: str) -> Any:
    """Import ``"package.module:attr"`` (attr may be dotted) and return the object."""
    module_name, _, attr_path = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr_path.split("."):
        obj = getattr(obj, part)
    return obj


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise PluginSpecError(
            f"Invalid {kind} name {name!r}",
            "use lower-case letters, digits, '.', '_' or '-', starting with a letter or digit",
        )


def _check_target(kind: str, name: str, field_name: str, target: str | None, required: bool = True) -> None:
    if target is None and not required:
        return
    if not isinstance(target, str) or not TARGET_PATTERN.match(target):
        raise PluginSpecError(
            f"{kind} '{name}': {field_name} must be a 'module:attr' string, got {target!r}",
            "name the function or object lazily, e.g. 'my_pkg.models:load'",
        )


@dataclass(frozen=True)
class ComponentSpec:
    """Fields every component has. ``plugin``/``distribution``/``version`` are filled in by the manager."""

    kind: ClassVar[str] = "component"
    name: str
    description: str = ""
    plugin: str = field(default="", compare=False)
    distribution: str = field(default="", compare=False)
    version: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        _check_name(self.kind, self.name)
        if not isinstance(self.description, str):
            raise PluginSpecError(f"{self.kind} '{self.name}': description must be a string")


LORA_MODULES_DEFAULT = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class FamilySpec(ComponentSpec):
    """A model family, keyed by the exact ``config.architectures[0]`` (e.g. ``Qwen2ForCausalLM``).

    It maps canonical names to the family's module paths and defines the terminal layer and its pooling.
    ``pooling`` is ``"mean"`` (mean over non-padding tokens) or ``"last"`` (last non-padding token).
    ``terminal_layer`` is ``"final_norm"`` (output of the last decoder block after the final norm: the
    default) or ``"last_block"`` (before the final norm). A family that departs from the default must say
    why in its module docstring.

    Tokenizer: ``padding_side`` for probe batches; ``pad_tokens`` are existing tokens tried in order as the
    pad token when the tokenizer has none or pads with EOS (the loader never lets pad = EOS, so EOS stays
    visible to the loss; failing those, it uses the unknown token or adds a pad token in a spare embedding
    row). Quantisation defaults: ``quant_type`` (``"nf4"`` or ``"fp4"``), ``double_quant`` and
    ``compute_dtype`` of the 4-bit base (QLoRA: NF4, double quantisation, bf16 compute).
    """

    kind: ClassVar[str] = "family"
    architecture: str = ""
    layers_path: str = "model.layers"
    final_norm_path: str = "model.norm"
    embed_path: str = "model.embed_tokens"
    lora_targets: tuple[str, ...] = LORA_MODULES_DEFAULT
    terminal_layer: str = "final_norm"
    pooling: str = "mean"
    padding_side: str = "right"
    compute_dtype: str = "bfloat16"
    pad_tokens: tuple[str, ...] = ()
    quant_type: str = "nf4"
    double_quant: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not re.match(r"^[A-Za-z_]\w*$", self.architecture or ""):
            raise PluginSpecError(f"family '{self.name}': architecture must be a class name like 'LlamaForCausalLM'")
        if self.pooling not in ("mean", "last"):
            raise PluginSpecError(f"family '{self.name}': pooling must be 'mean' or 'last'")
        if self.terminal_layer not in ("final_norm", "last_block"):
            raise PluginSpecError(f"family '{self.name}': terminal_layer must be 'final_norm' or 'last_block'")
        if self.padding_side not in ("left", "right"):
            raise PluginSpecError(f"family '{self.name}': padding_side must be 'left' or 'right'")
        if not self.lora_targets or not all(isinstance(t, str) and t for t in self.lora_targets):
            raise PluginSpecError(f"family '{self.name}': lora_targets must be non-empty module names")
        if self.quant_type not in ("nf4", "fp4"):
            raise PluginSpecError(f"family '{self.name}': quant_type must be 'nf4' or 'fp4'")
        if self.compute_dtype not in ("bfloat16", "float16", "float32"):
            raise PluginSpecError(f"family '{self.name}': compute_dtype must be bfloat16, float16 or float32")
        if not all(isinstance(t, str) and t for t in self.pad_tokens):
            raise PluginSpecError(f"family '{self.name}': pad_tokens must be non-empty token strings")


@dataclass(frozen=True)
class ModelSpec(ComponentSpec):
    """A model the harness can load.

    ``config`` is a lazy target returning a ``transformers`` config dict (or a path to a config.json).
    ``hub_id`` names the Hugging Face repository for real weights (None: the model only exists as
    random weights, like the embedded tiny models). ``tokenizer`` is a lazy target returning a tokenizer
    for models that have no hub tokenizer. ``twin_tokenizer`` is a lazy target ``f() -> (tokenizer,
    description)`` that a shape twin (``--random-weights``) uses when the hub tokenizer is not in the local
    cache (it raises ``ImportError`` when what it needs is not installed; the twin then falls back to the
    embedded byte-level tokenizer). ``random_seed`` seeds weights built from the config.
    ``embedded`` marks models built in-process with no download (the tiny models). ``run_defaults``
    overrides the protocol's run defaults for this model (e.g. fewer steps for a tiny model); a config
    file and command-line flags override them in turn.
    """

    kind: ClassVar[str] = "model"
    config: str = ""
    hub_id: str | None = None
    tokenizer: str | None = None
    twin_tokenizer: str | None = None
    random_seed: int = 0
    embedded: bool = False
    run_defaults: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_target("model", self.name, "config", self.config)
        _check_target("model", self.name, "tokenizer", self.tokenizer, required=False)
        _check_target("model", self.name, "twin_tokenizer", self.twin_tokenizer, required=False)
        if self.hub_id is None and self.tokenizer is None:
            raise PluginSpecError(f"model '{self.name}': give a hub_id or a tokenizer target")


@dataclass(frozen=True)
class CompanionSpec(ComponentSpec):
    """A text stream mixed with the primary code stream during fine-tuning.

    ``documents`` is a lazy target ``f(seed: int, offline: bool) -> Iterator[str]`` yielding documents.
    ``dataset`` names the public dataset used for real runs (id, config, split, text field, licence).
    """

    kind: ClassVar[str] = "companion"
    documents: str = ""
    dataset: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)
    offline_source: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_target("companion", self.name, "documents", self.documents)


@dataclass(frozen=True)
class ProbeSetSpec(ComponentSpec):
    """A labelled probe set. ``probes`` is a lazy target ``f() -> list[Probe]``."""

    kind: ClassVar[str] = "probe_set"
    probes: str = ""
    concepts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_target("probe set", self.name, "probes", self.probes)


@dataclass(frozen=True)
class MetricSpec(ComponentSpec):
    """A geometry metric. ``compute`` is a lazy target ``f(analysis: GeometryAnalysis) -> dict``.

    ``keys`` lists the record keys the metric writes (checked when it runs); ``needs_base`` marks metrics
    that compare against the base model's activations (skipped when none are available).
    """

    kind: ClassVar[str] = "metric"
    compute: str = ""
    keys: tuple[str, ...] = ()
    needs_base: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_target("metric", self.name, "compute", self.compute)
        if not self.keys:
            raise PluginSpecError(f"metric '{self.name}': keys must list the record keys it writes")


@dataclass(frozen=True)
class ExperimentSpec(ComponentSpec):
    """An experiment: launches the runs it needs and builds its tables. ``run`` is a lazy target."""

    kind: ClassVar[str] = "experiment"
    run: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_target("experiment", self.name, "run", self.run)


@dataclass(frozen=True)
class ExecutorSpec(ComponentSpec):
    """Where the runs of a sweep execute (``ent sweep --executor NAME``).

    ``execute`` is a lazy target ``f(tasks, context) -> list[dict]``: it receives the runs still to do as
    :class:`ent_harness.sweep.SweepTask` objects and an :class:`ent_harness.sweep.ExecutorContext`, calls
    ``context.runner(task, gpu)`` (by default :func:`ent_harness.sweep.run_task`, which skips, starts or
    resumes one run as an ``ent run`` subprocess) wherever the work should happen, and returns one result
    dict per task. ``settings`` lists the keys its table (``[NAME]``) in a sweep file may hold, and
    ``setting_kinds`` what some of them must be (pairs of key and one of :data:`SETTING_KINDS`), checked when
    the sweep file is read. ``requires`` names the modules it imports and ``extra`` the pip extra that installs
    them: a missing module stops the sweep before anything starts with one line naming
    ``pip install "ent-harness[EXTRA]"``.
    """

    kind: ClassVar[str] = "executor"
    execute: str = ""
    settings: tuple[str, ...] = ()
    setting_kinds: tuple[tuple[str, str], ...] = ()
    requires: tuple[str, ...] = ()
    extra: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_target("executor", self.name, "execute", self.execute)
        for group, values in (("settings", self.settings), ("requires", self.requires)):
            if not isinstance(values, tuple) or not all(isinstance(v, str) and v for v in values):
                raise PluginSpecError(f"executor '{self.name}': {group} must be a tuple of non-empty strings")
        for pair in self.setting_kinds:
            if (not isinstance(pair, tuple) or len(pair) != 2 or pair[0] not in self.settings
                    or pair[1] not in SETTING_KINDS):
                raise PluginSpecError(f"executor '{self.name}': setting_kinds must pair a key of settings with one "
                                      f"of {', '.join(SETTING_KINDS)}, got {pair!r}")


SETTING_KINDS = {
    "text": "a string",
    "count": "a whole number, 0 or more",
    "number": "a number, 0 or more",
    "flag": "true or false",
    "texts": "a list of strings",
    "table": "a table",
}
"""What an executor setting may be declared to be (:attr:`ExecutorSpec.setting_kinds`), with the phrase an
error message uses."""


def setting_matches(kind: str, value: object) -> bool:
    """Whether a sweep file's ``value`` is of ``kind`` (TOML types: a bool is not a number)."""
    if kind == "text":
        return isinstance(value, str)
    if kind == "flag":
        return isinstance(value, bool)
    if kind in ("count", "number"):
        allowed = int if kind == "count" else (int, float)
        return isinstance(value, allowed) and not isinstance(value, bool) and value >= 0
    if kind == "texts":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, dict)


SPEC_TYPES: dict[str, type[ComponentSpec]] = {
    spec.kind: spec
    for spec in (FamilySpec, ModelSpec, CompanionSpec, ProbeSetSpec, MetricSpec, ExperimentSpec, ExecutorSpec)
}
