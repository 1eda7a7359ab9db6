"""`ent diagnose`: the metric suite on user activations, or on a model (and adapter) without training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .diagnostics import check_activations, run_metric_suite
from .errors import InputFileError
from .plugin_manager import Registry, get_registry
from .probes import load_probe_file, probe_labels


def load_activation_file(path: str | Path) -> np.ndarray:
    """An n x d array from ``.npy`` or from key ``X`` of ``.npz``."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"Activation file '{path}' does not exist", "check the --activations path")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputFileError(f"{path}: not a readable .npy/.npz file ({exc})") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            if "X" not in loaded.files:
                raise InputFileError(f"{path}: no array named 'X' (found: {', '.join(loaded.files) or 'none'})",
                                     "save the activations with np.savez(path, X=activations)")
            return np.asarray(loaded["X"])
    return np.asarray(loaded)


def diagnose_activations(activations_path: str, probes_path: str, seed: int = 0,
                         base_activations_path: str | None = None, registry: Registry | None = None) -> dict[str, Any]:
    probes = load_probe_file(probes_path)
    activations = check_activations(load_activation_file(activations_path), len(probes), str(activations_path))
    base = None
    if base_activations_path:
        base = check_activations(load_activation_file(base_activations_path), len(probes), str(base_activations_path))
    result = run_metric_suite(registry or get_registry(), activations, probe_labels(probes), seed, base,
                              probe_ids=[p.id for p in probes])
    result["n_probes"], result["dim"] = activations.shape
    return result


def diagnose_model(registry: Registry, model_name: str, adapter: str | None, probes_name: str, seed: int,
                   quantize: str, model_path: str | None = None, random_weights: bool = False,
                   device: str = "auto") -> dict[str, Any]:
    from .modeling import load_adapter, load_model, terminal_activations
    from .run import load_probes

    spec = registry.get("model", model_name)
    probes, source = load_probes(registry, probes_name)
    loaded = load_model(spec, registry, quantize, device, model_path=model_path, random_weights=random_weights)
    if adapter:
        load_adapter(loaded, adapter)
    activations = terminal_activations(loaded, [p.text or "" for p in probes])
    result = run_metric_suite(registry, activations, probe_labels(probes), seed, probe_ids=[p.id for p in probes])
    result.update({"model": model_name, "adapter": adapter, "probes": source, "quantization": loaded.quantization,
                   "family": loaded.family.name})
    return result


def print_summary(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    def fmt(value: Any) -> str:
        if value is None:
            return "—"
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    console = Console()
    table = Table(title="ent diagnose", show_header=True)
    table.add_column("metric")
    table.add_column("value")
    table.add_row("EI (mean ± SD)", f"{fmt(result.get('ei'))} ± {fmt(result.get('ei_sd'))}")
    table.add_row("null EI (permuted labels)", fmt(result.get("ei_null")))
    for concept, ratio in (result.get("ei_per_concept") or {}).items():
        table.add_row(f"  carried ratio c/d: {concept}", fmt(ratio))
    table.add_row("cross damage", fmt(result.get("cross_damage")))
    table.add_row("spectrum", ", ".join(fmt(v) for v in result.get("spectrum") or []))
    table.add_row("SV1/SV2, concentration", f"{fmt(result.get('sv_ratio'))}, {fmt(result.get('concentration'))}")
    table.add_row("effective / design rank", f"{fmt(result.get('effective_rank'))} / {fmt(result.get('design_rank'))}")
    table.add_row("V-purity", fmt(result.get("v_purity")))
    table.add_row("margin (raw, normalized)", f"{fmt(result.get('margin'))}, {fmt(result.get('margin_normalized'))}")
    for concept, accuracy in (result.get("accuracy") or {}).items():
        table.add_row(f"LOO accuracy: {concept}", fmt(accuracy))
    if result.get("cka_to_base") is not None:
        table.add_row("CKA to base", fmt(result["cka_to_base"]))
    console.print(table)
    for flag in result.get("flags") or []:
        message = flag.get("message") if isinstance(flag, dict) else str(flag)
        console.print(f"[yellow]flag[/yellow]: {message}")
