"""`ent run`: the B-protocol at any scale, from a resolved RunConfig to a complete run directory.

``prepare_run`` / ``prepare_resume`` check everything cheap first (names, probes, directories), so a mistake
fails in a second; ``execute_run`` loads the model and hands over to :class:`~ent_harness.trainer.Trainer`.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from . import __version__
from .checkpoint import latest_valid_checkpoint
from .config import RunConfig
from .data import MixedBatches, PackedSequences
from .distributed import rank_and_world
from .errors import EntError, RunDirectoryError
from .faults import FaultPlan
from .modeling import attach_lora, load_adapter, load_model
from .plugin_manager import Registry
from .probes import Probe
from .report import write_run_report
from .reporters import open_tensorboard
from .rundir import (
    DIAGNOSTICS_FILE,
    RUN_FILE,
    atomic_write_text,
    prepare_run_dir,
    read_jsonl,
    write_json,
)
from .schedule import diagnostic_steps
from .specs import resolve_target
from .speed import apply_speed, plan_speed, resolve_mode
from .trainer import ProgressCallback, Trainer

__all__ = ["PreparedRun", "execute_run", "prepare_resume", "prepare_run", "resolve_init_adapter"]


def package_versions() -> dict[str, str]:
    versions = {"ent-harness": __version__, "python": platform.python_version()}
    for name in ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "numpy", "scipy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def load_probes(registry: Registry, name_or_path: str) -> tuple[list[Probe], str]:
    """A registered probe set by name, or a JSONL file path."""
    from .probes import load_probe_file

    if name_or_path.endswith(".jsonl") or Path(name_or_path).is_file():
        return load_probe_file(name_or_path, require_text=True), f"file:{name_or_path}"
    spec = registry.get("probe_set", name_or_path)
    return resolve_target(spec.probes)(), f"probe-set:{spec.name}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_run_record(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise RunDirectoryError(f"'{run_dir}' holds no run.json", "point at a run directory written by `ent run`")
    return json.loads(path.read_text(encoding="utf-8"))


def resolve_init_adapter(spec: str, model_name: str) -> dict[str, Any]:
    """``RUN_DIR[:STEP]`` -> the parent adapter folder and what the child records about its parent."""
    run_part, _, step_part = spec.rpartition(":") if ":" in spec and spec.rsplit(":", 1)[1].isdigit() else (spec, "", "")
    parent_dir = Path(run_part)
    parent = read_run_record(parent_dir)
    if parent.get("model") != model_name:
        raise EntError(f"--init-adapter run '{parent_dir}' trained model '{parent.get('model')}', not '{model_name}'",
                       "continue an adapter on the model it was trained on")
    records = [r for r in read_jsonl(parent_dir / DIAGNOSTICS_FILE) if "event" not in r and r.get("adapter")]
    if step_part:
        step = int(step_part)
    elif records:
        step = max(r["step"] for r in records)
    else:
        raise EntError(f"run '{parent_dir}' has no saved adapter", "give RUN_DIR:STEP of a saved step")
    folder = parent_dir / "adapters" / f"step-{step}"
    if not (folder / "adapter_config.json").is_file():
        raise EntError(f"'{folder}' is not a saved adapter", "pick a step listed in the parent's diagnostics.jsonl")
    parent_ei = next((r.get("ei") for r in records if r["step"] == step), None)
    return {"run_dir": str(parent_dir.resolve()), "step": step, "adapter": str(folder.resolve()),
            "model": parent.get("model"), "companion": parent.get("companion"), "seed": parent.get("seed"),
            "ei_at_step": parent_ei}


@dataclass
class PreparedRun:
    """Everything checked before heavy work starts."""

    config: RunConfig
    run_dir: Path
    registry: Registry
    record: dict[str, Any]
    probes: list[Probe]
    model_spec: Any
    primary_spec: Any
    companion_spec: Any
    metric_specs: list[Any]
    faults: FaultPlan
    resume_from: Path | None = None
    redo_diagnostic: bool = False
    writer: bool = True  # False on the ranks > 0 of a data-parallel run: they write nothing

    def save_record(self) -> None:
        if self.writer:
            write_json(self.run_dir / RUN_FILE, self.record)

    def save_final_record(self) -> None:
        """run.json and report.md at the end of the run (the writer only)."""
        if self.writer:
            write_json(self.run_dir / RUN_FILE, self.record)
            write_run_report(self.run_dir, self.record)


def _resolve_components(config: RunConfig, registry: Registry) -> tuple[Any, Any, Any, list[Probe], str, list[Any]]:
    model_spec = registry.get("model", config.model)
    primary_spec = registry.get("companion", config.primary)
    companion_spec = registry.get("companion", config.companion)
    probes, probe_source = load_probes(registry, config.probes)
    return model_spec, primary_spec, companion_spec, probes, probe_source, registry.all("metric")


def prepare_run(config: RunConfig, registry: Registry, run_dir: Path, force: bool = False) -> PreparedRun:
    """A new run: resolve every component, validate probes, create the directory, write run.json."""
    model_spec, primary_spec, companion_spec, probes, probe_source, metric_specs = _resolve_components(config, registry)
    parent = resolve_init_adapter(config.init_adapter, config.model) if config.init_adapter else None
    prepare_run_dir(run_dir, force)
    record: dict[str, Any] = {
        "model": config.model,
        "companion": config.companion,
        "seed": config.seed,
        "status": "starting",
        "config": config.to_record(),
        "versions": package_versions(),
        "host": platform.node(),
        "started": _now(),
        "probe_source": probe_source,
        "n_probes": len(probes),
        "data_sources": {
            "primary": {"name": primary_spec.name, "source": f"offline:{primary_spec.offline_source}"},
            "companion": {"name": companion_spec.name, "source": f"offline:{companion_spec.offline_source}"},
        },
        "metrics": [f"{m.name} ({m.distribution})" for m in metric_specs],
        "parent": parent,
        "events": [],
    }
    prepared = PreparedRun(config, run_dir, registry, record, probes, model_spec, primary_spec, companion_spec,
                           metric_specs, FaultPlan.from_specs(config.inject_faults))
    prepared.save_record()
    return prepared


def prepare_resume(run_dir: Path, registry: Registry, steps: int | None = None,
                   inject_faults: tuple[str, ...] = ()) -> PreparedRun:
    """Continue ``run_dir`` from its newest verified checkpoint (``--steps`` may extend the run)."""
    record = read_run_record(run_dir)
    config = RunConfig.from_record(record["config"])
    config = replace(config, out=str(run_dir), inject_faults=tuple(inject_faults),
                     steps=steps if steps is not None else config.steps)
    if record.get("status") == "finished" and config.steps <= int(record.get("step", config.steps)):
        raise RunDirectoryError(f"Run '{run_dir}' already finished at step {record.get('step')}",
                                "pass --steps N with a larger N to continue it")
    model_spec, primary_spec, companion_spec, probes, _, metric_specs = _resolve_components(config, registry)
    checkpoint = latest_valid_checkpoint(run_dir)
    resume_step = 0
    if checkpoint is not None:
        resume_step = int(json.loads((checkpoint / "trainer_state.json").read_text())["step"])
    # drop what was recorded after the checkpoint: those steps are recomputed identically
    kept = [r for r in read_jsonl(run_dir / DIAGNOSTICS_FILE) if r["step"] <= resume_step] if checkpoint else []
    has_record = any(r["step"] == resume_step and "event" not in r for r in kept)
    _check_tokenizer(model_spec, config, recorded_tokenizer(record, checkpoint))  # before anything is rewritten
    diag_steps = diagnostic_steps(config.steps, config.diag_every, config.diag_windows)
    atomic_write_text(run_dir / DIAGNOSTICS_FILE, "".join(json.dumps(r) + "\n" for r in kept))
    record.update({"status": "resuming", "config": config.to_record(), "resumed": _now()})
    record["events"] = [e for e in record.get("events", []) if e.get("step", 0) <= resume_step]
    return PreparedRun(config, run_dir, registry, record, probes, model_spec, primary_spec, companion_spec,
                       metric_specs, FaultPlan.from_specs(config.inject_faults), resume_from=checkpoint,
                       redo_diagnostic=checkpoint is not None and not has_record and resume_step in diag_steps)


def recorded_tokenizer(record: dict[str, Any], checkpoint: Path | None) -> str | None:
    """The tokenizer a resumed run must keep: its recorded ``tokenizer_source`` (``UNRECORDED_TOKENIZER`` for a
    run.json written before ent recorded it); None for a new run or one with no checkpoint (it starts over)."""
    from .weights import UNRECORDED_TOKENIZER

    if checkpoint is None:
        return None
    return str(record.get("tokenizer_source", UNRECORDED_TOKENIZER))


def _check_tokenizer(model_spec: Any, config: RunConfig, recorded: str | None) -> None:
    """A resumed shape twin gets the tokenizer it recorded, or one line (exit 2) before the run is touched.

    Only twins choose between tokenizers on the machine at hand (cached hub tokenizer, the plugin's offline
    one, the byte-level fallback); ``load_model`` checks every kind of run again when it loads the tokenizer.
    """
    if not recorded or not config.random_weights:
        return
    from .modeling import model_config
    from .weights import load_tokenizer, resolve_source

    load_tokenizer(model_spec, resolve_source(model_spec, model_config(model_spec), config.model_path, True), recorded)


def execute_run(prepared: PreparedRun, on_progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Run (or continue) the protocol; returns the final run record (also in run.json)."""
    record = prepared.record
    try:
        status = _train(prepared, on_progress)
    except BaseException as exc:
        record["status"] = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        record["error"] = f"{type(exc).__name__}: {exc}"
        record["finished"] = _now()
        prepared.save_final_record()
        raise
    record["status"] = status
    record["finished"] = _now()
    prepared.save_final_record()
    return record


def _train(prepared: PreparedRun, on_progress: ProgressCallback | None) -> str:
    import numpy as np
    import torch

    config, record = prepared.config, prepared.record
    torch.manual_seed(config.seed)
    np.random.seed(config.seed % (2**32))
    loaded = load_model(prepared.model_spec, prepared.registry, config.quantize, config.device, config.model_path,
                        config.random_weights, recorded_tokenizer(record, prepared.resume_from))
    checkpointing = config.gradient_checkpointing == "on" or (
        config.gradient_checkpointing == "auto" and loaded.device.type == "cuda")
    speed_mode = resolve_mode(config.speed, loaded.device.type)
    if config.init_adapter:
        parent = record["parent"] or resolve_init_adapter(config.init_adapter, config.model)
        model = load_adapter(loaded, parent["adapter"], trainable=True, gradient_checkpointing=checkpointing)
        lora = model.peft_config["default"]
        record["lora"] = {"r": lora.r, "alpha": lora.lora_alpha, "source": "parent adapter"}
    else:
        model = attach_lora(loaded, config.lora_r, config.lora_alpha, config.lora_dropout, config.lora_targets,
                            gradient_checkpointing=checkpointing)
        record["lora"] = {"r": config.lora_r, "alpha": config.lora_alpha, "source": "new"}
    speed = apply_speed(model, loaded, plan_speed(model, loaded, config, speed_mode, checkpointing))
    if speed_mode != "plain":
        checkpointing = speed.recomputed_layers + speed.selective_layers > 0
    record.update({
        "status": "running",
        "quantization": loaded.quantization,
        "weights_source": loaded.weights_source,
        "tokenizer_source": loaded.tokenizer_source,
        "device": str(loaded.device),
        "family": loaded.family.name,
        "gradient_checkpointing": checkpointing,
        "world_size": rank_and_world()[1],
        "speed": speed.to_record(),
        "lora_targets": sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                                if hasattr(module, "lora_A") and name}),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
    })
    primary = PackedSequences(lambda: resolve_target(prepared.primary_spec.documents)(config.seed, config.offline),
                              loaded.tokenizer, config.seq_len)
    companion = None
    if prepared.companion_spec.name != "none":
        companion = PackedSequences(
            lambda: resolve_target(prepared.companion_spec.documents)(config.seed + 1, config.offline),
            loaded.tokenizer, config.seq_len)
    batches = MixedBatches(primary, companion, config.companion_share, config.batch_size, config.seed)
    for role, stream in (("primary", primary), ("companion", companion)):
        if stream is not None:  # a stream may say which source it really used (hub or offline fallback)
            record["data_sources"][role]["source"] = getattr(stream.documents, "source",
                                                             record["data_sources"][role]["source"])
    purge = None
    if prepared.resume_from is not None:
        purge = int(json.loads((prepared.resume_from / "trainer_state.json").read_text())["step"]) + 1
    reporter, tensorboard = open_tensorboard(prepared.run_dir, config.tensorboard and prepared.writer, purge)
    record["tensorboard"] = tensorboard
    trainer = Trainer(config, prepared.run_dir, loaded, batches, prepared.probes, prepared.registry,
                      prepared.metric_specs, prepared.faults, record, prepared.save_record, reporter, on_progress,
                      speed=speed, writer=prepared.writer)
    prepared.save_record()
    status = trainer.run(prepared.resume_from, prepared.redo_diagnostic)
    record["companion_fraction"] = batches.companion_fraction
    record["faults_fired"] = record.get("faults_fired", []) + prepared.faults.fired
    record["wall_time_s"] = trainer.elapsed()
    return status
