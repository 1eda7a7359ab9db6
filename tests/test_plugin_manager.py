"""The plugin manager: built-ins, entry points loaded in isolation, check_pending, duplicates."""

from __future__ import annotations

import types
from typing import Any

import pytest

from ent_harness.errors import PluginSpecError, UnknownComponentError
from ent_harness.hookspecs import hookimpl
from ent_harness.plugin_manager import BUILTIN_PLUGINS, build_registry
from ent_harness.specs import CompanionSpec, MetricSpec, ModelSpec


class FakeDist:
    def __init__(self, name: str, version: str) -> None:
        self.metadata = {"Name": name}
        self.version = version


class FakeEntryPoint:
    """Stands in for importlib.metadata.EntryPoint: a name, a dist and a load()."""

    def __init__(self, name: str, plugin: Any, dist: str = "fake-dist", version: str = "1.0") -> None:
        self.name = name
        self._plugin = plugin
        self.dist = FakeDist(dist, version)

    def load(self) -> Any:
        if isinstance(self._plugin, BaseException):
            raise self._plugin
        return self._plugin


def plugin_module(name: str, **hooks: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook_name, function in hooks.items():
        setattr(module, hook_name, hookimpl(function))
    return module


def a_model(name: str) -> ModelSpec:
    return ModelSpec(name=name, config="ent_plugins.models.tiny:qwen2_config",
                     tokenizer="ent_plugins.models.byte_tokenizer:build_byte_tokenizer")


def test_builtins_register_every_kind_through_the_hooks() -> None:
    registry = build_registry(entry_points=[])
    assert registry.broken == [] and registry.rejected == []
    assert {"tiny-qwen2", "tiny-llama", "tiny-mistral"} <= set(registry.names("model"))
    assert {"qwen2", "llama", "mistral"} <= set(registry.names("family"))
    assert {"code", "nl", "math", "none"} <= set(registry.names("companion"))
    assert "factorial-v1" in registry.names("probe_set")
    assert "entanglement" in registry.names("metric")
    for spec in registry.all("model"):
        assert spec.plugin in BUILTIN_PLUGINS and spec.distribution == "ent-harness"


def test_a_third_party_plugin_registers_with_its_distribution() -> None:
    def register_models(register):
        register(a_model("third-party-model"))

    ep = FakeEntryPoint("good", plugin_module("good_plugin", register_models=register_models), "good-dist", "2.3")
    registry = build_registry(entry_points=[ep])
    spec = registry.get("model", "third-party-model")
    assert (spec.plugin, spec.distribution, spec.version) == ("good", "good-dist", "2.3")


def test_a_plugin_that_fails_to_import_is_recorded_not_fatal() -> None:
    ep = FakeEntryPoint("exploding", ImportError("No module named 'missing_dependency'"), "bad-dist", "0.1")
    registry = build_registry(entry_points=[ep])
    assert len(registry.broken) == 1
    broken = registry.broken[0]
    assert broken.plugin == "exploding" and broken.distribution == "bad-dist"
    assert "missing_dependency" in broken.error and "\n" not in broken.error
    assert "tiny-qwen2" in registry.names("model")  # everything else still loads


def test_a_failing_hook_undoes_the_plugins_partial_registration() -> None:
    def register_models(register):
        register(a_model("half-registered"))
        raise RuntimeError("boom after the first registration")

    def register_companions(register):
        register(CompanionSpec(name="never-kept", documents="ent_plugins.companions.offline:no_documents"))

    module = plugin_module("half", register_models=register_models, register_companions=register_companions)
    registry = build_registry(entry_points=[FakeEntryPoint("half", module)])
    assert "half-registered" not in registry.names("model")
    assert "never-kept" not in registry.names("companion")
    assert [b.plugin for b in registry.broken] == ["half"]
    assert "boom" in registry.broken[0].error


def test_a_misspelt_hook_is_caught_by_check_pending() -> None:
    def register_modelz(register):  # not a hook of ent
        register(a_model("typo-model"))

    registry = build_registry(entry_points=[FakeEntryPoint("typo", plugin_module("typo", register_modelz=register_modelz))])
    assert [b.plugin for b in registry.broken] == ["typo"]
    assert "register_modelz" in registry.broken[0].error


def test_a_spec_of_the_wrong_kind_breaks_only_that_plugin() -> None:
    def register_models(register):
        register(MetricSpec(name="not-a-model", compute="x.y:z", keys=("a",)))

    registry = build_registry(entry_points=[FakeEntryPoint("wrongkind", plugin_module("w", register_models=register_models))])
    assert [b.plugin for b in registry.broken] == ["wrongkind"]
    assert "expected ModelSpec" in registry.broken[0].error


def test_duplicate_names_are_rejected_naming_both_sources_and_builtins_win() -> None:
    def register_models(register):
        register(a_model("tiny-qwen2"))
        register(a_model("unique-name"))

    registry = build_registry(entry_points=[FakeEntryPoint("clash", plugin_module("clash", register_models=register_models), "clash-dist")])
    assert registry.get("model", "tiny-qwen2").distribution == "ent-harness"
    assert registry.get("model", "unique-name").distribution == "clash-dist"
    assert len(registry.rejected) == 1
    error = registry.rejected[0].error
    assert "ent_plugins.models" in error and "clash" in error and "tiny-qwen2" in error


def test_duplicates_between_two_third_parties_name_both() -> None:
    def register_models(register):
        register(a_model("shared-name"))

    eps = [FakeEntryPoint("first", plugin_module("p1", register_models=register_models), "a-dist"),
           FakeEntryPoint("second", plugin_module("p2", register_models=register_models), "b-dist")]
    registry = build_registry(entry_points=eps)
    assert registry.get("model", "shared-name").distribution == "a-dist"
    assert "a-dist" in registry.rejected[0].error and "b-dist" in registry.rejected[0].error


def test_throwaway_in_process_plugin_is_registered_and_gone_afterwards() -> None:
    def register_companions(register):
        register(CompanionSpec(name="throwaway", documents="ent_plugins.companions.offline:no_documents"))

    module = plugin_module("throwaway", register_companions=register_companions)
    registry = build_registry(entry_points=[], extra_plugins=[("throwaway", module)])
    try:
        assert registry.get("companion", "throwaway").plugin == "throwaway"
    finally:
        del registry
    assert "throwaway" not in build_registry(entry_points=[]).names("companion")


def test_unknown_names_suggest_close_matches_with_a_count() -> None:
    registry = build_registry(entry_points=[])
    with pytest.raises(UnknownComponentError) as info:
        registry.get("model", "tiny-qwen")
    line = info.value.one_line()
    assert "Did you mean: tiny-qwen2" in line and f"({len(registry.names('model'))} available" in line


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "Bad Name", "config": "a.b:c", "tokenizer": "a.b:c"},
        {"name": "ok", "config": "not-a-target", "tokenizer": "a.b:c"},
        {"name": "ok", "config": "a.b:c"},  # neither hub id nor tokenizer
    ],
)
def test_specs_validate_when_constructed(kwargs: dict[str, Any]) -> None:
    with pytest.raises(PluginSpecError):
        ModelSpec(**kwargs)


@pytest.mark.parametrize("kinds", [(("gpus", "integer"),), (("gpu", "count"),), ("gpus",)])
def test_executor_setting_kinds_name_a_setting_and_a_known_kind(kinds: tuple) -> None:
    from ent_harness.specs import ExecutorSpec

    assert ExecutorSpec(name="ok", execute="a.b:c", settings=("gpus",), setting_kinds=(("gpus", "count"),))
    with pytest.raises(PluginSpecError):
        ExecutorSpec(name="ok", execute="a.b:c", settings=("gpus",), setting_kinds=kinds)


def test_every_hook_is_documented_and_exercised() -> None:
    """Meta-test: each hookspec has a docstring and a built-in implementation, so it is tested above."""
    import inspect

    from ent_harness import hookspecs

    registry = build_registry(entry_points=[])
    for hook_name, kind in hookspecs.REGISTRATION_HOOKS.items():
        function = getattr(hookspecs, hook_name)
        assert inspect.getdoc(function) and "register" in inspect.getdoc(function)
        if kind != "experiment":  # experiments arrive with the experiments issue
            assert registry.names(kind), f"no built-in uses {hook_name}"
