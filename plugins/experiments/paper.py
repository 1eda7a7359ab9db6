"""The paper's experiments as plans of runs. Each function returns the run directories its report reads;
`ent experiment NAME` launches what is missing (finished runs are re-used) and writes the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ent_harness.experiments import ExperimentOptions, PlannedRun, ensure_base_diagnosis, ensure_run

QWEN_LADDER = ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "qwen2.5-coder-3b", "qwen2.5-coder-7b",
               "qwen2.5-coder-14b", "qwen2.5-coder-32b")
BASE_MODELS = ("codellama-7b", "deepseek-coder-6.7b", "qwen2.5-coder-7b", "qwen2.5-coder-14b", "qwen2.5-coder-32b")
CROSS_ARCHITECTURE = ("codellama-7b", "deepseek-coder-6.7b", "qwen2.5-coder-7b", "mistral-7b-v0.3",
                      "qwen2.5-coder-32b")


def _settings(options: ExperimentOptions, model: str, companion: str, seed: int, **extra: Any) -> dict[str, Any]:
    return {"model": model, "companion": companion, "seed": seed, "steps": options.steps,
            "diag_every": options.diag_every, "random_weights": options.random_weights or None,
            "device": options.device, **extra}


def _run_name(model: str, companion: str, seed: int, suffix: str = "") -> str:
    return f"{model}-{companion}-s{seed}{suffix}"


def _train_all(options: ExperimentOptions, registry: Any, plans: list[PlannedRun]) -> list[Path]:
    return [ensure_run(plan, options, registry) for plan in plans]


def dynamics(options: ExperimentOptions, registry: Any) -> list[Path]:
    model = options.pick_models(("qwen2.5-coder-32b",))[0]
    plans = [PlannedRun(_run_name(model, companion, seed), _settings(options, model, companion, seed))
             for companion in ("nl", "math") for seed in options.seed_list(8)]
    return _train_all(options, registry, plans)


def margin(options: ExperimentOptions, registry: Any) -> list[Path]:
    return [ensure_base_diagnosis(model, options, registry) for model in options.pick_models(BASE_MODELS)]


def composition(options: ExperimentOptions, registry: Any) -> list[Path]:
    return [ensure_base_diagnosis(model, options, registry) for model in options.pick_models(BASE_MODELS)]


def scale_ladder(options: ExperimentOptions, registry: Any) -> list[Path]:
    seeds = options.seed_list(1) if options.seeds else [42]
    plans = [PlannedRun(_run_name(model, "nl", seed), _settings(options, model, "nl", seed))
             for model in options.pick_models(QWEN_LADDER) for seed in seeds]
    return _train_all(options, registry, plans)


def cross_architecture(options: ExperimentOptions, registry: Any) -> list[Path]:
    seeds = options.seed_list(1) if options.seeds else [42]
    plans = [PlannedRun(_run_name(model, "nl", seed), _settings(options, model, "nl", seed))
             for model in options.pick_models(CROSS_ARCHITECTURE) for seed in seeds]
    return _train_all(options, registry, plans)


def reversibility(options: ExperimentOptions, registry: Any) -> list[Path]:
    model = options.pick_models(("qwen2.5-coder-14b",))[0]
    then = options.extra.get("companion") or "math"
    run_dirs = []
    for seed in options.seed_list(1):
        parent = ensure_run(PlannedRun(_run_name(model, "nl", seed), _settings(options, model, "nl", seed)),
                            options, registry)
        child = PlannedRun(_run_name(model, then, seed, "-from-nl"),
                           _settings(options, model, then, seed, init_adapter=str(parent)))
        run_dirs += [parent, ensure_run(child, options, registry)]
    return run_dirs
