"""`ent run`: the B-protocol at any scale, from a resolved RunConfig to a complete run directory."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .config import RunConfig
from .data import MixedBatches, PackedSequences
from .diagnostics import run_metric_suite
from .modeling import LoadedModel, attach_lora, load_model, terminal_activations
from .plugin_manager import Registry
from .probes import Probe, probe_labels
from .report import write_run_report
from .rundir import (
    DIAGNOSTICS_FILE,
    RUN_FILE,
    adapter_is_finite,
    append_jsonl,
    prepare_run_dir,
    save_adapter,
    write_json,
)
from .specs import resolve_target

ProgressCallback = Callable[[int, dict[str, Any]], None]


def diagnostic_steps(steps: int, every: int) -> list[int]:
    """Step 0 (the base model), every ``every`` steps, and the last step."""
    return sorted({0, steps, *range(every, steps + 1, every)})


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


@dataclass
class RunContext:
    config: RunConfig
    run_dir: Path
    registry: Registry
    record: dict[str, Any]

    def save_record(self) -> None:
        write_json(self.run_dir / RUN_FILE, self.record)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _lr_at(step: int, config: RunConfig) -> float:
    """Linear warm-up to ``lr`` over ``warmup_steps``, then constant (the paper's schedule)."""
    if config.warmup_steps and step <= config.warmup_steps:
        return config.lr * step / config.warmup_steps
    return config.lr


@dataclass
class PreparedRun:
    """Everything checked before any heavy work starts: a bad name or directory fails here, in a second."""

    ctx: RunContext
    model_spec: Any
    primary_spec: Any
    companion_spec: Any
    probes: list[Probe]
    metric_specs: list[Any]


def prepare_run(config: RunConfig, registry: Registry, run_dir: Path, force: bool = False) -> PreparedRun:
    """Resolve every component, validate the probes, create the run directory and write run.json."""
    model_spec = registry.get("model", config.model)
    primary_spec = registry.get("companion", config.primary)
    companion_spec = registry.get("companion", config.companion)
    probes, probe_source = load_probes(registry, config.probes)
    metric_specs = registry.all("metric")
    prepare_run_dir(run_dir, force)
    record = {
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
        "events": [],
    }
    ctx = RunContext(config, run_dir, registry, record)
    ctx.save_record()
    return PreparedRun(ctx, model_spec, primary_spec, companion_spec, probes, metric_specs)


def execute_run(prepared: PreparedRun, on_progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Run the whole protocol; returns the final run record (also written to run.json)."""
    ctx = prepared.ctx
    try:
        return _train(ctx, prepared.model_spec, prepared.primary_spec, prepared.companion_spec, prepared.probes,
                      prepared.metric_specs, on_progress)
    except BaseException as exc:
        ctx.record["status"] = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        ctx.record["error"] = f"{type(exc).__name__}: {exc}"
        ctx.record["finished"] = _now()
        ctx.save_record()
        write_run_report(ctx.run_dir, ctx.record)
        raise


def _train(ctx: RunContext, model_spec: Any, primary_spec: Any, companion_spec: Any, probes: list[Probe],
           metric_specs: list[Any], on_progress: ProgressCallback | None) -> dict[str, Any]:
    import torch

    config = ctx.config
    torch.manual_seed(config.seed)
    np.random.seed(config.seed % (2**32))
    loaded: LoadedModel = load_model(model_spec, ctx.registry, config.quantize, config.device,
                                     config.model_path, config.random_weights)
    model = attach_lora(loaded, config.lora_r, config.lora_alpha, config.lora_dropout, config.lora_targets)
    ctx.record.update(
        {
            "status": "running",
            "quantization": loaded.quantization,
            "weights_source": loaded.weights_source,
            "device": str(loaded.device),
            "family": loaded.family.name,
            "lora_targets": list(config.lora_targets or loaded.family.lora_targets),
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        }
    )
    ctx.save_record()

    documents = resolve_target(primary_spec.documents)(config.seed, config.offline)
    companion_docs = resolve_target(companion_spec.documents)(config.seed + 1, config.offline)
    primary = PackedSequences(iter(documents), loaded.tokenizer, config.seq_len)
    companion = None if companion_spec.name == "none" else PackedSequences(iter(companion_docs), loaded.tokenizer, config.seq_len)
    batches = MixedBatches(primary, companion, config.companion_share, config.batch_size, config.seed)

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    texts = [p.text or "" for p in probes]
    labels = probe_labels(probes)
    probe_ids = [p.id for p in probes]
    schedule = diagnostic_steps(config.steps, config.diag_every)
    autocast_dtype = torch.bfloat16
    device_type = loaded.device.type

    base_activations: np.ndarray | None = None
    losses: list[float] = []
    grad_norm = float("nan")
    started = time.perf_counter()

    def diagnose(step: int) -> dict[str, Any]:
        nonlocal base_activations
        t0 = time.perf_counter()
        activations = terminal_activations(loaded, texts, config.probe_batch_size, config.probe_max_tokens)
        if base_activations is None:
            base_activations = activations
        metrics = run_metric_suite(ctx.registry, activations, labels, config.metrics_seed, base_activations, metric_specs,
                                   probe_ids)
        record: dict[str, Any] = {"step": step, **metrics}
        record.update(
            {
                "train_loss": float(np.mean(losses)) if losses else None,
                "lr": _lr_at(step, config) if step else 0.0,
                "grad_norm": grad_norm if step else None,
                "tokens_seen": step * config.batch_size * config.grad_accum * config.seq_len,
                "companion_fraction": batches.companion_fraction,
                "wall_time_s": time.perf_counter() - started,
                "diagnostic_time_s": time.perf_counter() - t0,
                "gpu_memory_gb": torch.cuda.max_memory_allocated() / 1e9 if torch.cuda.is_available() else None,
            }
        )
        if not adapter_is_finite(model):
            record["adapter_saved"] = False
            ctx.record["events"].append({"step": step, "event": "non-finite adapter", "detail": "not saved"})
        else:
            record["adapter"] = str(save_adapter(model, ctx.run_dir, step).relative_to(ctx.run_dir))
        append_jsonl(ctx.run_dir / DIAGNOSTICS_FILE, record)
        losses.clear()
        return record

    last = diagnose(0)
    if on_progress:
        on_progress(0, last)
    model.train()
    for step in range(1, config.steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, config)
        step_loss = 0.0
        for _ in range(config.grad_accum):
            ids = torch.tensor(batches.next_batch(), dtype=torch.long, device=loaded.device)
            with torch.autocast(device_type=device_type, dtype=autocast_dtype):
                loss = model(input_ids=ids, labels=ids).loss / config.grad_accum
            loss.backward()
            step_loss += float(loss.detach())
        grad_norm = float(torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm))
        if not (np.isfinite(step_loss) and np.isfinite(grad_norm)):
            optimizer.zero_grad(set_to_none=True)
            ctx.record["events"].append(
                {"step": step, "event": "non-finite loss or gradient", "detail": f"loss={step_loss}, grad_norm={grad_norm}; stopped"}
            )
            ctx.record["status"] = "diverged"
            break
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(step_loss)
        if step in schedule:
            last = diagnose(step)
        if on_progress:
            on_progress(step, {"train_loss": step_loss, "ei": last.get("ei")})
    if ctx.record["status"] == "running":
        ctx.record["status"] = "finished"
    ctx.record["finished"] = _now()
    ctx.record["wall_time_s"] = time.perf_counter() - started
    ctx.record["companion_fraction"] = batches.companion_fraction
    ctx.save_record()
    write_run_report(ctx.run_dir, ctx.record)
    return ctx.record
