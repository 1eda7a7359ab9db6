"""Loads built-in and third-party plugins into a :class:`Registry`, each in isolation.

Fills pluggy's gaps: every plugin (a built-in module or an entry point of group ``ent``) is imported,
registered, checked for misspelt hooks (``check_pending``) and asked to register its components in its own
try block. A plugin that fails anywhere is recorded as broken with a one-line error, its partial
registrations are undone, and loading carries on: one broken third-party package never breaks ``ent``.
"""

from __future__ import annotations

import importlib
import importlib.metadata as importlib_metadata
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from types import ModuleType
from typing import Any

import pluggy

from . import __version__, hookspecs
from .errors import DuplicateComponentError, UnknownComponentError
from .specs import SPEC_TYPES, ComponentSpec, FamilySpec

ENTRY_POINT_GROUP = "ent"
BUILTIN_DISTRIBUTION = "ent-harness"
BUILTIN_PLUGINS: tuple[str, ...] = (
    "ent_plugins.families",
    "ent_plugins.models",
    "ent_plugins.companions",
    "ent_plugins.probes",
    "ent_plugins.metrics",
    "ent_plugins.experiments",
    "ent_plugins.executors",
)


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin that could not be loaded; none of its components is registered."""

    plugin: str
    distribution: str
    version: str
    error: str


@dataclass(frozen=True)
class RejectedComponent:
    """A component refused at registration (duplicate name); the first registration keeps the name."""

    spec: ComponentSpec
    error: str


@dataclass
class Registry:
    """Every registered component by kind and name, plus what failed to load."""

    components: dict[str, dict[str, ComponentSpec]] = field(
        default_factory=lambda: {kind: {} for kind in hookspecs.REGISTRATION_HOOKS.values()}
    )
    broken: list[BrokenPlugin] = field(default_factory=list)
    rejected: list[RejectedComponent] = field(default_factory=list)

    def names(self, kind: str) -> list[str]:
        return sorted(self.components[kind])

    def get(self, kind: str, name: str) -> Any:
        """The spec registered under ``name``; unknown names raise a "Did you mean" error."""
        try:
            return self.components[kind][name]
        except KeyError:
            raise UnknownComponentError(kind.replace("_", "-"), name, self.components[kind]) from None

    def all(self, kind: str) -> list[Any]:
        return [self.components[kind][name] for name in self.names(kind)]

    def family_for(self, architecture: str) -> FamilySpec:
        """The family serving ``config.architectures[0]`` exactly."""
        for spec in self.components["family"].values():
            assert isinstance(spec, FamilySpec)
            if spec.architecture == architecture:
                return spec
        known = sorted(s.architecture for s in self.components["family"].values())  # type: ignore[attr-defined]
        raise UnknownComponentError("architecture", architecture, known)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


class _Loader:
    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.registry = Registry()

    def load(self, plugin_name: str, obtain: Any, distribution: str, version: str) -> None:
        """Import (``obtain()``), register and collect one plugin; never raises for the plugin's faults."""
        staged: list[ComponentSpec] = []
        registered = False
        try:
            plugin = obtain()
            self.pm.register(plugin, name=plugin_name)
            registered = True
            self.pm.check_pending()
            others = [p for p in self.pm.get_plugins() if p is not plugin]
            for hook_name, kind in hookspecs.REGISTRATION_HOOKS.items():
                expected = SPEC_TYPES[kind]

                def register(spec: ComponentSpec, _expected: type = expected, _hook: str = hook_name) -> None:
                    if not isinstance(spec, _expected):
                        raise TypeError(f"{_hook} registered {type(spec).__name__}, expected {_expected.__name__}")
                    staged.append(
                        replace(spec, plugin=plugin_name, distribution=distribution, version=version)
                    )

                self.pm.subset_hook_caller(hook_name, remove_plugins=others)(register=register)
        except Exception as exc:  # noqa: BLE001 - isolation is the point: record, undo, carry on
            if registered:
                self.pm.unregister(name=plugin_name)
            self.registry.broken.append(BrokenPlugin(plugin_name, distribution, version, _one_line(exc)))
            return
        for spec in staged:
            self._add(spec)

    def _add(self, spec: ComponentSpec) -> None:
        table = self.registry.components[spec.kind]
        first = table.get(spec.name)
        if first is None:
            table[spec.name] = spec
            return
        error = DuplicateComponentError(
            f"Duplicate {spec.kind} '{spec.name}': registered by {first.plugin} ({first.distribution}) "
            f"and by {spec.plugin} ({spec.distribution})",
            f"the first ({first.plugin}) is kept; rename one of them",
        )
        self.registry.rejected.append(RejectedComponent(spec, error.one_line()))


def _entry_point_distribution(entry_point: Any) -> tuple[str, str]:
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return "?", "?"
    return dist.metadata["Name"] or "?", dist.version or "?"


def build_registry(
    builtin_modules: Iterable[str] = BUILTIN_PLUGINS,
    entry_points: Iterable[Any] | None = None,
    extra_plugins: Iterable[tuple[str, ModuleType | object]] = (),
) -> Registry:
    """Load built-ins first (they win name clashes), then entry points, then ``extra_plugins`` (tests)."""
    loader = _Loader()
    for module_name in builtin_modules:
        loader.load(module_name, lambda m=module_name: importlib.import_module(m), BUILTIN_DISTRIBUTION, __version__)
    if entry_points is None:
        entry_points = importlib_metadata.entry_points(group=ENTRY_POINT_GROUP)
    for entry_point in sorted(entry_points, key=lambda ep: (_entry_point_distribution(ep)[0], ep.name)):
        distribution, version = _entry_point_distribution(entry_point)
        loader.load(entry_point.name, entry_point.load, distribution, version)
    for name, plugin in extra_plugins:
        loader.load(name, lambda p=plugin: p, "(in-process)", "")
    return loader.registry


@lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The registry of this process (built once)."""
    return build_registry()
