"""QLoRA training throughput: the plain transformers + peft + bitsandbytes step against `ent`'s own step.

One process, one GPU, one shape twin per model (the model's exact config, seeded random weights quantised to
NF4 with double quantisation). Both loops see the same weights, the same LoRA initialisation, the same
batches (seeded random token ids) and the same dropout RNG stream, so their losses must agree step by step
within bf16 noise: same function, computed faster.

The peer is what a researcher writes by hand (issue 9): prepare_model_for_kbit_training with non-reentrant
gradient checkpointing, LoRA r 64 / alpha 128 / dropout 0.05 on the seven linears, paged AdamW 32-bit,
autocast bf16, SDPA attention, full-vocabulary logits and `model(input_ids, labels=input_ids).loss`,
gradient clipping at 1.0. `ent` runs `ent_harness.trainer.forward_backward` with the speed plan `ent run`
would choose (harness/speed.py), plus the same clipping and optimiser step.

Timing: warm-up steps, then the median of timed steps, each bracketed by torch.cuda.synchronize(). Memory:
torch's peak reserved bytes from the start of the variant (weights included) plus the paged optimiser's
states, which live in CUDA managed memory outside torch's allocator. Diagnostics overhead: one diagnostic
step (probe activations of factorial-v1 + the metric suite, as the trainer computes it) against 100 steps.

    python bench/qlora_throughput.py --models qwen2.5-coder-7b,qwen2.5-coder-32b --out $OUT
    python bench/qlora_throughput.py --section-from RESULTS.json [RESULTS2.json] --write BENCHMARKS.md

Variants: `peer`, `ent` (auto = fast on CUDA), `ent:low-memory`, `ent:plain`, and ablations
`ent:fast:recompute=on|off`, `ent:fast:dequant=0`, `ent:fast:gemms=N`, `ent:fast:budget=GIB`,
`ent:fast:compile=off`.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

SECTION = "## QLoRA training throughput on the GPU"
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "ent-harness"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def batches(vocab: int, count: int, batch: int, seq_len: int, seed: int) -> list[Any]:
    import torch

    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab, (batch, seq_len), generator=generator) for _ in range(count)]


def free_cuda() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def synchronize() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def load_twin(spec: Any, registry: Any, device: str) -> Any:
    from ent_harness.modeling import load_model

    return load_model(spec, registry, quantize="nf4", device=device, random_weights=True)


def build_peer(spec: Any, registry: Any, args: Any) -> tuple[Any, Any, Any]:
    """The plain stack (peft's standard QLoRA recipe) on the same twin weights."""
    import bitsandbytes as bnb
    import torch
    from peft import LoraConfig, get_peft_model

    # the twin as from_pretrained would give it for the same weights (tests/test_weights.py checks that)
    model = load_twin(spec, registry, args.device).model
    family = registry.family_for(model.config.architectures[0])
    from peft import prepare_model_for_kbit_training

    model.config.use_cache = False
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True,
                                            gradient_checkpointing_kwargs={"use_reentrant": False})
    torch.manual_seed(args.seed)
    model = get_peft_model(model, LoraConfig(r=64, lora_alpha=128, lora_dropout=0.05, bias="none",
                                             target_modules=list(family.lora_targets), task_type="CAUSAL_LM"))
    model.train()  # as a Trainer would: dropout active, checkpointed layers recomputed
    trainable = [p for p in model.parameters() if p.requires_grad]
    paged = args.device == "cuda"
    optimizer = (bnb.optim.PagedAdamW32bit(trainable, lr=1e-4, weight_decay=0.0) if paged
                 else torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.0))

    def step(ids: Any) -> float:
        with torch.autocast(args.device, dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    return model, step, {"paged_state_bytes": 8 * sum(p.numel() for p in trainable) if paged else 0,
                         "optimizer": type(optimizer).__name__}


def parse_variant(text: str) -> dict[str, Any]:
    parts = text.split(":")
    options: dict[str, Any] = {"name": text, "kind": parts[0], "mode": "auto"}
    for part in parts[1:]:
        if "=" in part:
            key, value = part.split("=", 1)
            options[key] = value
        else:
            options["mode"] = part
    return options


def build_ent(spec: Any, registry: Any, args: Any, variant: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    """`ent`'s own step: load_model, attach_lora, the speed plan of `ent run`, build_optimizer."""
    import torch
    from ent_harness.config import RunConfig
    from ent_harness.modeling import attach_lora
    from ent_harness.speed import apply_speed, plan_speed, resolve_mode
    from ent_harness.trainer import build_optimizer, forward_backward

    recompute = variant.get("recompute", "auto")
    compile_layers = {"1": "on", "0": "off"}.get(variant.get("compile", "auto"), variant.get("compile", "auto"))
    config = RunConfig(model=spec.name, random_weights=True, batch_size=args.batch, seq_len=args.seq_len,
                       gradient_checkpointing=recompute, speed=variant["mode"],
                       compile_layers=compile_layers,
                       memory_budget_gib=float(variant["budget"]) if "budget" in variant else None)
    loaded = load_twin(spec, registry, args.device)
    mode = resolve_mode(config.speed, args.device)
    checkpointing = recompute != "off"
    torch.manual_seed(args.seed)
    model = attach_lora(loaded, config.lora_r, config.lora_alpha, config.lora_dropout, None,
                        gradient_checkpointing=checkpointing)
    plan = plan_speed(model, loaded, config, mode, checkpointing)
    if "dequant" in variant:
        plan.dequantized_layers = int(variant["dequant"])
    if "gemms" in variant:  # selective layers keeping their GEMM outputs (0: attention and rank-r outputs only)
        plan.selective_gemm_layers = min(int(variant["gemms"]), plan.selective_layers)
    plan = apply_speed(model, loaded, plan)
    model.train()  # as ent's Trainer does before its first step
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer, optimizer_name = build_optimizer(trainable, config, args.device, fast=plan.mode == "fast")
    decoder_path = loaded.family.layers_path.rsplit(".", 1)[0]

    def step(ids: Any) -> float:
        loss = forward_backward(model, ids, plan, decoder_path, 1)
        torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    info = {"plan": plan.to_record(), "optimizer": optimizer_name,
            "paged_state_bytes": 8 * sum(p.numel() for p in trainable) if "paged" in optimizer_name else 0}
    return model, step, info, loaded


def time_steps(step: Any, data: list[Any], warmup: int, device: str) -> tuple[list[float], list[float]]:
    times, losses = [], []
    for index, ids in enumerate(data):
        ids = ids.to(device, non_blocking=True)
        synchronize()
        start = time.perf_counter()
        losses.append(step(ids))
        synchronize()
        if index >= warmup:
            times.append(time.perf_counter() - start)
    return times, losses


def _dynamo_counters() -> Any:
    import collections

    try:
        from torch._dynamo.utils import counters
    except Exception:  # noqa: BLE001 - a torch without dynamo: nothing compiled, nothing counted
        return collections.defaultdict(collections.Counter)
    return counters


def profile_step(step: Any, ids: Any, args: Any, name: str) -> None:
    """One more step under torch.profiler: the top kernels by GPU time, written next to the JSON."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        step(ids.to(args.device))
        synchronize()
    table = prof.key_averages().table(sort_by="cuda_time_total" if args.device == "cuda" else "cpu_time_total",
                                      row_limit=40)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    Path(args.out, f"profile-{safe}.txt").write_text(table, encoding="utf-8")


def diagnostics_time(loaded: Any, registry: Any, repeats: int = 5) -> dict[str, Any]:
    """Diagnostic steps as Trainer.diagnose computes them with ent run's defaults: probe activations (probe batch
    size and length of RunConfig), then the metric suite; ``repeats`` of them after a warm-up, each with the
    garbage collector's pauses inside it. Then one full collection, timed (what a collection that falls inside
    a step can add). Also times the activations at other probe batch sizes (each after a warm-up)."""
    from ent_harness.config import RunConfig
    from ent_harness.diagnostics import run_metric_suite
    from ent_harness.modeling import terminal_activations
    from ent_harness.probes import probe_labels
    from ent_plugins.probes.builtin import factorial_v1

    defaults = RunConfig(model="bench")
    batch, max_tokens = defaults.probe_batch_size, defaults.probe_max_tokens
    probes = factorial_v1()
    texts, labels, ids = [p.text for p in probes], probe_labels(probes), [p.id for p in probes]
    pauses: list[float] = []
    started: list[float] = []

    def on_gc(phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            pauses.append(time.perf_counter() - started.pop())

    def activations_time(size: int) -> tuple[float, Any]:
        synchronize()
        start = time.perf_counter()
        rows = terminal_activations(loaded, texts, size, max_tokens)
        synchronize()
        return time.perf_counter() - start, rows

    _extract, rows = activations_time(batch)  # warm-up, and the metric suite's first-call imports
    run_metric_suite(registry, rows, labels, 0, rows, registry.all("metric"), ids)
    samples = []
    gc.callbacks.append(on_gc)
    try:
        for _ in range(repeats):
            pauses.clear()
            extract, rows = activations_time(batch)
            start = time.perf_counter()
            run_metric_suite(registry, rows, labels, 0, rows, registry.all("metric"), ids)
            samples.append({"activations_s": extract, "metrics_s": time.perf_counter() - start,
                            "gc_pause_s": sum(pauses)})
    finally:
        gc.callbacks.remove(on_gc)
    tracked = len(gc.get_objects())
    start = time.perf_counter()
    gc.collect()
    full_collection_s = time.perf_counter() - start
    totals = [s["activations_s"] + s["metrics_s"] for s in samples]
    tokens = sum(len(i) for i in loaded.tokenizer(texts, truncation=True, max_length=max_tokens)["input_ids"])
    def warmed_activations_time(size: int) -> float:
        activations_time(size)  # warm-up: the first pass at a batch size is slower
        return activations_time(size)[0]

    others = {f"activations_s_batch{size}": warmed_activations_time(size) for size in (16, 64, 192) if size != batch}
    return {"step_s": statistics.median(totals), "step_max_s": max(totals),
            **{key: statistics.median(s[key] for s in samples) for key in samples[0]},
            "gc_pause_max_s": max(s["gc_pause_s"] for s in samples), "samples": samples, "repeats": repeats,
            "objects_tracked": tracked, "full_collection_s": full_collection_s,
            "probe_batch_size": batch, "probe_tokens": tokens, "tokenizer": loaded.tokenizer_source, **others}


def run_variant(spec: Any, registry: Any, args: Any, name: str, data: list[Any]) -> dict[str, Any]:
    import torch

    free_cuda()
    variant = parse_variant(name)
    loaded = None
    started = time.perf_counter()
    if variant["kind"] == "peer":
        model, step, info = build_peer(spec, registry, args)
    else:
        model, step, info, loaded = build_ent(spec, registry, args, variant)
    setup_s = time.perf_counter() - started
    torch.manual_seed(args.seed + 1)  # the same dropout stream for every variant
    compile_counters = _dynamo_counters()
    compile_counters.clear()
    try:
        times, losses = time_steps(step, data, args.warmup, args.device)
    except torch.OutOfMemoryError as exc:
        del model, step
        free_cuda()
        return {"variant": name, "error": f"out of memory: {str(exc).splitlines()[0]}"}
    median = statistics.median(times)
    if variant.get("profile"):
        profile_step(step, data[-1], args, name)
    result = {
        "variant": name, "setup_s": setup_s, "step_s": times, "median_step_s": median,
        "tokens_per_s": args.batch * args.seq_len / median, "losses": losses,
        "peak_allocated_gb": torch.cuda.max_memory_allocated() / 1e9 if args.device == "cuda" else 0.0,
        "peak_reserved_gb": torch.cuda.max_memory_reserved() / 1e9 if args.device == "cuda" else 0.0, **info,
    }
    result["peak_gb"] = result["peak_reserved_gb"] + info.get("paged_state_bytes", 0) / 1e9
    # torch.compile's own account: graph breaks split a compiled layer into pieces that run eagerly in between
    result["graph_breaks"] = sum(compile_counters["graph_break"].values())
    result["compiled_graphs"] = compile_counters["stats"].get("unique_graphs", 0)
    if loaded is not None and args.diagnostics and variant["mode"] in ("auto", "fast") and len(variant) <= 4:
        result["diagnostics"] = diagnostics_time(loaded, registry)
        diagnostics = result["diagnostics"]
        diagnostics["overhead_vs_100_steps"] = diagnostics["step_s"] / (100 * median)
        diagnostics["overhead_max_vs_100_steps"] = diagnostics["step_max_s"] / (100 * median)
    del model, step, loaded
    free_cuda()
    return result


def bench_model(name: str, registry: Any, args: Any) -> dict[str, Any]:
    spec = registry.get("model", name)
    from ent_harness.modeling import model_config

    vocab = int(model_config(spec)["vocab_size"])
    data = batches(vocab, args.warmup + args.steps, args.batch, args.seq_len, args.seed)
    out: dict[str, Any] = {"model": name, "variants": []}
    for variant in args.variants.split(","):
        print(f"[{name}] {variant} ...", flush=True)
        result = run_variant(spec, registry, args, variant, data)
        out["variants"].append(result)
        print(f"[{name}] {variant}: " + (result.get("error") or
              f"{result['tokens_per_s']:.0f} tok/s, {result['peak_gb']:.1f} GB, losses {result['losses'][:3]}"),
              flush=True)
    peer = next((v for v in out["variants"] if v["variant"].startswith("peer") and "error" not in v), None)
    if peer:
        for result in out["variants"]:
            if "error" in result or result is peer:
                continue
            result["speedup"] = result["tokens_per_s"] / peer["tokens_per_s"]
            diffs = [abs(a - b) for a, b in zip(result["losses"], peer["losses"], strict=True)]
            result["max_loss_diff"] = max(diffs)
            result["first_loss_diff"] = diffs[0]
    return out


# ---- tables --------------------------------------------------------------------------------------------
def fmt(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| shape | peer tok/s | ent tok/s | speedup | peer GB | ent GB | ent variant | max loss diff | run |",
             "|---|---|---|---|---|---|---|---|---|"]
    for run_index, result in enumerate(results, 1):
        peers = {model["model"]: v for model in result["models"] for v in model["variants"]
                 if v["variant"].startswith("peer") and "error" not in v}
        for model in result["models"]:
            peer = peers.get(model["model"])  # the peer of the same model, measured in the same session
            for variant in model["variants"]:
                if peer and "error" not in variant and "speedup" not in variant and variant is not peer:
                    variant["speedup"] = variant["tokens_per_s"] / peer["tokens_per_s"]
                    if len(variant["losses"]) == len(peer["losses"]):
                        variant["max_loss_diff"] = max(abs(a - b) for a, b in zip(variant["losses"], peer["losses"]))
                if variant["variant"].startswith("peer"):
                    continue
                if "error" in variant:
                    lines.append(f"| {model['model']} | {fmt(peer and peer['tokens_per_s'], 0)} | {variant['error']} "
                                 f"| | | | {variant['variant']} | | {run_index} |")
                    continue
                lines.append(
                    f"| {model['model']} | {fmt(peer and peer['tokens_per_s'], 0)} | {fmt(variant['tokens_per_s'], 0)} "
                    f"| {fmt(variant.get('speedup'))} | {fmt(peer and peer['peak_gb'], 1)} | {fmt(variant['peak_gb'], 1)} "
                    f"| `{variant['variant']}` | {fmt(variant.get('max_loss_diff'), 4)} | {run_index} |")
    return "\n".join(lines)


def _diagnostic_cells(diag: dict[str, Any], step_s: float) -> tuple[float, float, float, float | None]:
    """(activations s, metric suite s, overhead, slowest step's overhead or None) of one variant's diagnostics.

    Results of the single-step version of this bench have only the first three; those of session 4's runs 6
    and 7 also timed steps after ``gc.freeze``, which ent's trainer does not call: their ``unfrozen`` steps are
    the ones `ent run` sees."""
    timed = diag.get("unfrozen", diag)
    if "step_s" not in timed:
        return diag["activations_s"], diag["metrics_s"], diag["overhead_vs_100_steps"], None
    return (timed["activations_s"], timed["metrics_s"], timed["step_s"] / (100 * step_s),
            timed["step_max_s"] / (100 * step_s))


def diagnostics_table(results: list[dict[str, Any]]) -> str:
    lines = ["| shape | ent variant | probe tokens | probe activations (s) | metric suite (s) | ent step (s) "
             "| overhead vs 100 steps | slowest diagnostic step | run |", "|---|---|---|---|---|---|---|---|---|"]
    for run_index, result in enumerate(results, 1):
        for model in result["models"]:
            for variant in model["variants"]:
                diag = variant.get("diagnostics")
                if diag:
                    extract, metrics, overhead, worst = _diagnostic_cells(diag, variant["median_step_s"])
                    lines.append(f"| {model['model']} | `{variant['variant']}` | {fmt(diag.get('probe_tokens'), 0)} "
                                 f"| {fmt(extract)} | {fmt(metrics)} | {fmt(variant['median_step_s'], 3)} "
                                 f"| {overhead:.2%} | {'' if worst is None else f'{worst:.2%}'} | {run_index} |")
    return "\n".join(lines)


def section(results: list[dict[str, Any]]) -> str:
    first = results[0]
    return "\n".join([
        SECTION, "",
        f"Command: `{first['command']}` (run {len(results)} time(s), each row says which). GPU: {first['gpu']}. "
        f"Versions: {', '.join(f'{k} {v}' for k, v in first['versions'].items())}. Batch {first['settings']['batch']} x "
        f"{first['settings']['seq_len']} tokens, {first['settings']['warmup']} warm-up + {first['settings']['steps']} "
        "timed steps (median). GB = torch's peak reserved memory + the paged optimiser's managed-memory states "
        "(the peer and `low-memory`; `fast`'s fused AdamW keeps its states in torch's memory). "
        "Losses: both loops on identical batches, weights, LoRA init and dropout stream; `max loss diff` is the "
        "largest absolute difference over all steps.", "",
        table(results), "",
        "Diagnostics overhead (a diagnostic step as `ent run` takes it: factorial-v1 activations with the twin's "
        "tokenizer at the default probe batch size, then the metric suite, against 100 training steps of `ent`; "
        "the median of five steps after a warm-up, and the slowest of them, where the run timed five):", "",
        diagnostics_table(results), "",
    ])


def write_section(text: str, path: Path) -> None:
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    new = (pattern.sub(lambda _: text.rstrip("\n") + "\n\n", old, count=1) if pattern.search(old)
           else old.rstrip("\n") + "\n\n" + text)
    path.write_text(new, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="qwen2.5-coder-7b,qwen2.5-coder-14b,qwen2.5-coder-32b")
    parser.add_argument("--variants", default="peer,ent,ent:low-memory")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-diagnostics", dest="diagnostics", action="store_false")
    parser.add_argument("--device", default="cuda", help="cpu only for a smoke test")
    parser.add_argument("--out", default=os.environ.get("OUT", "."))
    parser.add_argument("--section-from", nargs="+", metavar="JSON", help="Only print the BENCHMARKS.md section.")
    parser.add_argument("--write", metavar="BENCHMARKS.md", help="With --section-from: replace the section there.")
    args = parser.parse_args(argv)
    if args.section_from:
        results = [json.loads(Path(p).read_text(encoding="utf-8")) for p in args.section_from]
        text = section(results)
        if args.write:
            write_section(text, Path(args.write))
        print(text)
        return 0

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from ent_harness.modeling import quiet_libraries
    from ent_harness.plugin_manager import build_registry

    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench/qlora_throughput.py needs a CUDA GPU (--device cpu is a smoke test only)", file=sys.stderr)
        return 2
    quiet_libraries()
    registry = build_registry()
    result = {"command": "python bench/qlora_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu (smoke test)",
              "versions": versions(),
              "settings": {"batch": args.batch, "seq_len": args.seq_len, "warmup": args.warmup, "steps": args.steps,
                           "seed": args.seed}, "models": []}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"qlora_throughput-{time.strftime('%Y%m%d-%H%M%S')}.json"
    for name in args.models.split(","):
        result["models"].append(bench_model(name, registry, args))
        path.write_text(json.dumps(result, indent=1), encoding="utf-8")  # partial results survive a timeout
    print(section([result]))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
