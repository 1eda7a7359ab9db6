"""What experiment plugins build on: planned runs that are skipped when finished, resumed when interrupted,
base-model diagnoses stored as one-step run directories, and the report over them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import EntError
from .plugin_manager import Registry
from .rundir import RUN_FILE, append_jsonl, prepare_run_dir, write_json


@dataclass(frozen=True)
class ExperimentOptions:
    """What `ent experiment NAME` was asked for. Empty tuples / None mean: the experiment's defaults."""

    out: Path
    models: tuple[str, ...] = ()
    seeds: int | None = None
    seed_base: int = 0
    steps: int | None = None
    diag_every: int | None = None
    random_weights: bool = False
    device: str | None = None
    rebuild_only: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def pick_models(self, default: tuple[str, ...]) -> tuple[str, ...]:
        return self.models or default

    def seed_list(self, default_count: int) -> list[int]:
        return [self.seed_base + i for i in range(self.seeds or default_count)]


@dataclass(frozen=True)
class PlannedRun:
    """One `ent run` an experiment needs: its directory name and its settings (as `ent run` flags)."""

    name: str
    settings: dict[str, Any]


def _status(run_dir: Path) -> str | None:
    path = run_dir / RUN_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8")).get("status")


def ensure_run(planned: PlannedRun, options: ExperimentOptions, registry: Registry) -> Path:
    """Skip a finished run, resume an interrupted one, start a missing one; returns its directory."""
    from .config import resolve_run_config
    from .progress import run_with_progress
    from .run import prepare_resume, prepare_run

    run_dir = options.out / "runs" / planned.name
    status = _status(run_dir)
    if status == "finished" or options.rebuild_only:
        if status is None:
            raise EntError(f"--rebuild: run '{run_dir}' does not exist", "run the experiment without --rebuild first")
        return run_dir
    if status is not None:
        prepared = prepare_resume(run_dir, registry)
    else:
        settings = {k: v for k, v in planned.settings.items() if v is not None}
        spec = registry.get("model", settings["model"])
        config = resolve_run_config(dict(spec.run_defaults), {}, {**settings, "out": str(run_dir)})
        prepared = prepare_run(config, registry, run_dir, force=True)
    record = run_with_progress(prepared)
    if record["status"] != "finished":
        raise EntError(f"run '{run_dir}' ended as {record['status']}", f"see {run_dir / 'report.md'}")
    return run_dir


def ensure_base_diagnosis(model: str, options: ExperimentOptions, registry: Registry, probes: str = "factorial-v1") -> Path:
    """The metric suite on a base model, stored as a run directory with one record (step 0)."""
    from .diagnose import diagnose_model

    run_dir = options.out / "base" / model
    if _status(run_dir) == "finished" or options.rebuild_only:
        if _status(run_dir) is None:
            raise EntError(f"--rebuild: '{run_dir}' does not exist", "run the experiment without --rebuild first")
        return run_dir
    result = diagnose_model(registry, model, None, probes, seed=0, quantize="auto",
                            random_weights=options.random_weights, device=options.device or "auto")
    prepare_run_dir(run_dir, force=True)
    append_jsonl(run_dir / "diagnostics.jsonl", {"step": 0, **result})
    write_json(run_dir / RUN_FILE, {"model": model, "companion": "base", "seed": 0, "status": "finished",
                                     "kind": "base diagnosis", "quantization": result.get("quantization"),
                                     "family": result.get("family"),
                                     "random_weights": options.random_weights, "probes": probes})
    return run_dir
