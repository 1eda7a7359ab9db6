"""Loaders of the shipped probe files (package data, validated like any user file)."""

from __future__ import annotations

from importlib import resources

from ent_harness.probes import Probe, load_probe_file


def _load(file_name: str) -> list[Probe]:
    with resources.as_file(resources.files("ent_plugins.probes") / "data" / file_name) as path:
        return load_probe_file(path, require_text=True)


def factorial_v1() -> list[Probe]:
    return _load("factorial-v1.jsonl")


def factorial_v2() -> list[Probe]:
    return _load("factorial-v2.jsonl")
