"""``ent plan``: parameter counts and a QLoRA memory estimate for a model plugin, without loading weights.

torch and transformers are imported inside the command only (``ent --help`` stays fast).
"""

from __future__ import annotations

import json
from typing import Any

import click


def _gib(value: float) -> str:
    return f"{value / float(1 << 30):.2f}"


@click.command("plan")
@click.option("--model", required=True, help="Model plugin name (see `ent list-plugins --kind model`).")
@click.option("--seq-len", type=int, default=1024, show_default=True, help="Tokens per training sequence.")
@click.option("--batch", type=int, default=4, show_default=True, help="Sequences per micro-batch.")
@click.option("--lora-r", type=int, default=64, show_default=True, help="LoRA rank.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (total_params, trainable_params, memory, ...).")
def plan_command(model: str, seq_len: int, batch: int, lora_r: int, as_json: bool) -> None:
    """Count parameters on the meta device and estimate the GPU memory of 4-bit QLoRA training."""
    from .planning import plan
    from .plugin_manager import get_registry

    registry = get_registry()
    result = plan(registry.get("model", model), registry, batch=batch, seq_len=seq_len, lora_r=lora_r)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    _print_plan(result)


def _print_plan(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    params, memory, settings = result["params"], result["memory"], result["settings"]
    console = Console()
    counts = Table(title=f"{result['model']} ({result['architecture']}, family {result['family']})")
    counts.add_column("parameters")
    counts.add_column("count", justify="right")
    for label, value in (
        ("total", params["total"]),
        ("embedding", params["embedding"]),
        ("lm_head" + (" (tied to the embedding)" if params["lm_head"] == 0 else ""), params["lm_head"]),
        (f"per layer (x {params['layers']})", params["per_layer"]),
        ("final norm and other", params["other"]),
        ("quantised to 4 bits", params["quantized"]),
        (f"LoRA trainable (r={settings['lora_r']}, {params['lora_modules']} modules)", params["lora_trainable"]),
    ):
        counts.add_row(label, f"{value:,}")
    console.print(counts)

    terms = memory["terms"]
    table = Table(title=f"GPU memory of QLoRA training, batch {settings['batch']} x {settings['seq_len']} tokens (GiB)")
    table.add_column("term")
    table.add_column("GiB", justify="right")
    for label, key in (
        ("4-bit weights (NF4 + double-quantised absmax)", "weights_4bit"),
        ("other weights (fp32 after k-bit preparation)", "weights_not_quantized"),
        ("LoRA parameters (fp32)", "lora_params"),
        ("LoRA gradients (fp32)", "lora_grads"),
        ("AdamW states (fp32 m and v)", "optimizer_states"),
        ("LoRA bf16 autocast copies", "lora_autocast_copies"),
        ("lm_head bf16 autocast copy", "lm_head_bf16_copy"),
        ("activations of one layer", "layer_activations"),
        ("layer checkpoints (all layers)", "checkpoints"),
        ("logits, forward (bf16 + fp32 + log-softmax)", "logits_forward"),
        ("logits, backward (log-softmax + 2 gradients)", "logits_backward"),
    ):
        table.add_row(label, _gib(terms[key]))
    for label, key in (("with gradient checkpointing", "with_checkpointing"),
                       ("without gradient checkpointing", "without_checkpointing")):
        block = memory[key]
        table.add_row(f"[bold]peak {label}[/bold] (at {block['peak_phase']}; activations {_gib(block['activations'])}, "
                      f"allocator {_gib(block['allocator_overhead'])}, CUDA context {_gib(block['cuda_context'])})",
                      f"[bold]{_gib(block['total'])}[/bold]")
    console.print(table)
    console.print("Terms and constants: docs/models.md; `--json` gives every value in bytes.")
