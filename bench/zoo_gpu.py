"""Model zoo on the GPU: every shipped model as a 4-bit shape twin, and `ent plan`'s estimate against a real step.

For each model: a shape twin (the exact config, seeded random weights drawn on the GPU and quantised to NF4
tensor by tensor: `load_model(..., random_weights=True)`), its load time and peak memory, and the time to
extract the terminal activations of the factorial-v1 probe set (192 probes) as a diagnostic step does.
Then, for the models given to --train (default qwen2.5-coder-7b and -32b), a short QLoRA training run as
`ent run` performs it (LoRA r=64 on the seven linears, gradient checkpointing, autocast bf16, batch 4 x 1024
random token ids, gradient clipping, AdamW; 3 warm-up + 5 timed steps), its peak memory, and the estimate
of `ent plan` for the same settings.

    PYTHONPATH=. python bench/zoo_gpu.py --models all                 # GPU: writes $OUT/zoo_gpu.json
    python bench/zoo_gpu.py --write-benchmarks zoo_gpu.json           # later, anywhere: update BENCHMARKS.md
    python bench/zoo_gpu.py --models tiny-qwen2 --train tiny-qwen2 --device cpu --train-seq-len 64   # a CPU check

Memory: `max_memory_allocated` (tensors) and `max_memory_reserved` (the caching allocator's segments), from
the start of loading for the load columns and from the start of training (weights already held) for the
training columns; "device" adds the CUDA context measured before the first model (device memory
in use minus what torch had reserved). The optimiser is torch's AdamW so that its states are counted by
torch's allocator (ent's default on CUDA, bitsandbytes' paged AdamW, holds the same 8 bytes per LoRA
parameter in managed memory, which torch does not count). GPU memory is freed between models.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Model zoo on the GPU"
DEFAULT_TRAIN = ("qwen2.5-coder-7b", "qwen2.5-coder-32b")
GIB = float(1 << 30)


def _zoo_names(registry: Any) -> list[str]:
    return [spec.name for spec in registry.all("model") if spec.plugin == "ent_plugins.models" and not spec.embedded]


def _sync(torch: Any, device: Any) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _free(torch: Any, device: Any) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _memory(torch: Any, device: Any) -> dict[str, float | None]:
    if device.type != "cuda":
        return {"max_allocated_gib": None, "max_reserved_gib": None, "allocated_gib": None}
    return {
        "max_allocated_gib": torch.cuda.max_memory_allocated(device) / GIB,
        "max_reserved_gib": torch.cuda.max_memory_reserved(device) / GIB,
        "allocated_gib": torch.cuda.memory_allocated(device) / GIB,
    }


def cuda_context_gib(torch: Any, device: Any) -> float | None:
    """Device memory in use that torch's allocator does not hold: the CUDA context, kernels, workspaces."""
    if device.type != "cuda":
        return None
    torch.empty(1, device=device)  # create the context
    torch.cuda.synchronize(device)
    free, total = torch.cuda.mem_get_info(device)
    return (total - free - torch.cuda.memory_reserved(device)) / GIB


def bench_model(name: str, registry: Any, device: Any, probes: list[str], train: bool, args: Any,
                context_gib: float | None) -> dict[str, Any]:
    import torch

    from ent_harness.modeling import load_model, terminal_activations
    from ent_harness.planning import plan

    spec = registry.get("model", name)
    _free(torch, device)
    record: dict[str, Any] = {"model": name, "hub_id": spec.hub_id}
    start = time.perf_counter()
    loaded = load_model(spec, registry, quantize="nf4", device=str(device), random_weights=True)
    _sync(torch, device)
    record["load_s"] = time.perf_counter() - start
    record["load_memory"] = _memory(torch, device)
    record["weights_source"] = loaded.weights_source
    record["tokenizer_source"] = loaded.tokenizer_source
    record["params"] = plan(spec, registry)["total_params"]  # exact (4-bit tensors pack two weights a byte)
    record["quantization"] = loaded.quantization

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    rows = terminal_activations(loaded, probes, batch_size=args.probe_batch_size, max_tokens=args.probe_max_tokens)
    _sync(torch, device)
    record["probes"] = {"n": len(probes), "seconds": time.perf_counter() - start, "shape": list(rows.shape),
                        "batch_size": args.probe_batch_size, "max_tokens": args.probe_max_tokens,
                        "memory": _memory(torch, device)}
    if train:
        record["train"] = bench_training(loaded, spec, registry, device, args, context_gib)
    del loaded, rows
    _free(torch, device)
    return record


def bench_training(loaded: Any, spec: Any, registry: Any, device: Any, args: Any,
                   context_gib: float | None) -> dict[str, Any]:
    import torch

    from ent_harness.modeling import attach_lora
    from ent_harness.planning import plan

    batch, seq_len, r = args.train_batch, args.train_seq_len, args.lora_r
    vocab = int(loaded.model.config.vocab_size)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)  # the peak below: weights + one training step's worth
    model = attach_lora(loaded, r=r, alpha=2 * r, dropout=0.05, targets=None, gradient_checkpointing=True)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.0)
    generator = torch.Generator(device="cpu").manual_seed(0)
    times: list[float] = []
    losses: list[float] = []
    for step in range(args.warmup_steps + args.timed_steps):
        ids = torch.randint(0, vocab, (batch, seq_len), generator=generator).to(device)
        _sync(torch, device)
        start = time.perf_counter()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(torch, device)
        if step >= args.warmup_steps:
            times.append(time.perf_counter() - start)
        losses.append(float(loss.detach()))
    measured = _memory(torch, device)  # peak since training started: the loaded weights included
    estimate = plan(spec, registry, batch=batch, seq_len=seq_len, lora_r=r)
    gc_plan = estimate["memory"]["with_checkpointing"]
    result: dict[str, Any] = {
        "batch": batch, "seq_len": seq_len, "lora_r": r, "steps": len(times), "warmup_steps": args.warmup_steps,
        "seconds_per_step": sum(times) / max(1, len(times)), "tokens_per_s": batch * seq_len * len(times) / max(1e-9, sum(times)),
        "final_loss": losses[-1], "trainable_params": sum(p.numel() for p in trainable), "optimizer": "torch AdamW",
        "memory": measured, "cuda_context_gib": context_gib,
        "plan": {"allocated_gib": gc_plan["allocated"] / GIB, "total_gib": gc_plan["total"] / GIB,
                 "peak_phase": gc_plan["peak_phase"], "trainable_params": estimate["trainable_params"],
                 "phases_gib": {k: v / GIB for k, v in gc_plan["phases"].items()},
                 "terms_gib": {k: v / GIB for k, v in estimate["memory"]["terms"].items()},
                 "static_gib": estimate["memory"]["static"] / GIB},
    }
    if measured["max_reserved_gib"] is not None:
        device_peak = measured["max_reserved_gib"] + (context_gib or 0.0)
        result["device_peak_gib"] = device_peak
        result["plan_vs_device"] = result["plan"]["total_gib"] / device_peak
        result["plan_vs_allocated"] = result["plan"]["allocated_gib"] / measured["max_allocated_gib"]
    del optimizer, trainable, model
    return result


def environment(device: Any) -> dict[str, Any]:
    import torch

    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for package in ("transformers", "peft", "bitsandbytes", "accelerate"):
        try:
            versions[package] = __import__(package).__version__
        except Exception:  # noqa: BLE001
            versions[package] = None
    info: dict[str, Any] = {"versions": versions, "device": str(device), "date": date.today().isoformat()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["gpu"] = props.name
        info["gpu_memory_gib"] = props.total_memory / GIB
    else:
        info["gpu"] = None
        info["cpu"] = platform.processor() or platform.machine()
    return info


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def tables(results: dict[str, Any]) -> str:
    lines = [
        "| model | parameters | load (s) | peak during load (GiB) | held after load (GiB) | 192 probes (s) | tokenizer |",
        "|---|---|---|---|---|---|---|",
    ]
    for rec in results["models"]:
        if "error" in rec:
            lines.append(f"| {rec['model']} | failed: {rec['error']} | | | | | |")
            continue
        mem = rec["load_memory"]
        tokenizer = "byte-level fallback" if "byte-level" in rec.get("tokenizer_source", "") else rec.get("tokenizer_source", "")
        lines.append(f"| {rec['model']} | {fmt(rec['params'])} | {fmt(rec['load_s'], 1)} | {fmt(mem['max_allocated_gib'])} "
                     f"| {fmt(mem['allocated_gib'])} | {fmt(rec['probes']['seconds'], 1)} | {tokenizer} |")
    trained = [rec for rec in results["models"] if "train" in rec]
    if trained:
        lines += [
            "",
            ("| model | batch x seq | s / step | peak allocated (GiB) | peak reserved (GiB) | device peak (GiB) "
             "| `ent plan` allocated (GiB) | `ent plan` total (GiB) | plan / device | plan / allocated |"),
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for rec in trained:
            tr = rec["train"]
            mem = tr["memory"]
            lines.append(
                f"| {rec['model']} | {tr['batch']} x {tr['seq_len']} | {fmt(tr['seconds_per_step'])} "
                f"| {fmt(mem['max_allocated_gib'])} | {fmt(mem['max_reserved_gib'])} | {fmt(tr.get('device_peak_gib'))} "
                f"| {fmt(tr['plan']['allocated_gib'])} | {fmt(tr['plan']['total_gib'])} "
                f"| {fmt(tr.get('plan_vs_device'), 3)} | {fmt(tr.get('plan_vs_allocated'), 3)} |"
            )
    return "\n".join(lines)


def section_text(results: dict[str, Any]) -> str:
    env = results["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
    where = f"{env['gpu']} ({fmt(env.get('gpu_memory_gib'), 0)} GiB)" if env.get("gpu") else env["device"]
    trained = [rec for rec in results["models"] if "train" in rec]
    text = [
        SECTION,
        "",
        ("Every shipped model as a 4-bit shape twin (`--random-weights`: the model's exact config, seeded random "
         "weights drawn on the GPU in bf16 and quantised to NF4 with double quantisation tensor by tensor; no "
         "download). Load time and peak memory of `load_model` (twin, k-bit preparation with fp32 embeddings, "
         "norms and lm_head), then the terminal activations of the factorial-v1 probe set (192 probes, batches of "
         f"{results['settings']['probe_batch_size']}, at most {results['settings']['probe_max_tokens']} tokens), "
         "as a diagnostic step extracts them. Twins with no cached hub tokenizer use the byte-level tokenizer, so "
         "probe sequences are longer than with the real tokenizer."),
        "",
        tables(results),
        "",
    ]
    if trained:
        tr = trained[0]["train"]
        text += [
            (f"Training: LoRA r={tr['lora_r']} on the seven linears, gradient checkpointing, autocast bf16, random "
             f"token ids, gradient clipping, torch AdamW; {tr['warmup_steps']} warm-up + {tr['steps']} timed steps. "
             "Peaks are from the start of training (the loaded weights included). Device peak = peak reserved + "
             f"CUDA context ({fmt(tr.get('cuda_context_gib'))} GiB measured before the first model). `ent plan` "
             "total = its allocated estimate + allocator overhead + CUDA context (docs/models.md); the acceptance "
             "bound is |plan / device - 1| <= 0.15."),
            "",
        ]
    text += [
        f"- command: `{results['command']}`",
        f"- device: {where}; {versions}",
        f"- date: {env['date']}",
        "",
    ]
    return "\n".join(text)


def write_section(text: str, path: Path) -> None:
    """Replace (or append) only the model-zoo section of BENCHMARKS.md."""
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    if pattern.search(old):
        new = pattern.sub(lambda _: text.rstrip("\n") + "\n\n", old, count=1)
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new.rstrip("\n") + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="all", help="comma-separated model names, or 'all' (the shipped zoo)")
    parser.add_argument("--train", default=",".join(DEFAULT_TRAIN),
                        help="models (among --models) to also train briefly; 'none' for none")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--probes", default="factorial-v1")
    parser.add_argument("--probe-batch-size", type=int, default=16)
    parser.add_argument("--probe-max-tokens", type=int, default=256)
    parser.add_argument("--train-batch", type=int, default=4)
    parser.add_argument("--train-seq-len", type=int, default=1024)
    parser.add_argument("--lora-r", type=int, default=64)
    parser.add_argument("--warmup-steps", type=int, default=3)
    parser.add_argument("--timed-steps", type=int, default=5)
    parser.add_argument("--out", help="JSON results file (default $OUT/zoo_gpu.json, else ./zoo_gpu.json)")
    parser.add_argument("--write-benchmarks", metavar="FILE.json",
                        help="only update the section of BENCHMARKS.md from a results file (no GPU needed)")
    parser.add_argument("--benchmarks", default=str(ROOT / "BENCHMARKS.md"), help="the BENCHMARKS.md to update")
    args = parser.parse_args(argv)

    if args.write_benchmarks:
        results = json.loads(Path(args.write_benchmarks).read_text(encoding="utf-8"))
        write_section(section_text(results), Path(args.benchmarks))
        print(f"wrote the '{SECTION}' section of {args.benchmarks}")
        return 0

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # twins never download; no network is needed or wanted
    import torch

    from ent_harness.modeling import quiet_libraries
    from ent_harness.plugin_manager import build_registry
    from ent_harness.specs import resolve_target

    quiet_libraries()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU visible (use --device cpu for a logic check)", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    registry = build_registry()
    names = _zoo_names(registry) if args.models == "all" else [m.strip() for m in args.models.split(",") if m.strip()]
    for name in names:
        registry.get("model", name)  # unknown names fail before any GPU work
    train = set() if args.train == "none" else {m.strip() for m in args.train.split(",") if m.strip()}
    probes = [p.text or "" for p in resolve_target(registry.get("probe_set", args.probes).probes)()]
    context = cuda_context_gib(torch, device)
    results: dict[str, Any] = {
        "command": "python bench/zoo_gpu.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "environment": environment(device),
        "settings": {"probes": args.probes, "probe_batch_size": args.probe_batch_size,
                     "probe_max_tokens": args.probe_max_tokens},
        "cuda_context_gib": context,
        "models": [],
    }
    out = Path(args.out) if args.out else Path(os.environ.get("OUT", ".")) / "zoo_gpu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for name in names:
        print(f"[{time.perf_counter() - started:6.0f} s] {name} ...", flush=True)
        try:
            record = bench_model(name, registry, device, probes, name in train, args, context)
        except Exception as exc:  # noqa: BLE001 - record and go on with the next model
            record = {"model": name, "error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"}
            _free(torch, device)
        results["models"].append(record)
        out.write_text(json.dumps(results, indent=2), encoding="utf-8")  # partial results survive a timeout
        brief = {k: record[k] for k in ("load_s",) if k in record}
        if "train" in record:
            brief["plan/device"] = record["train"].get("plan_vs_device")
        print(f"          {name}: {brief or record.get('error')}", flush=True)
    results["total_s"] = time.perf_counter() - started
    out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print()
    print(tables(results))
    print(f"\nwrote {out} ({results['total_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
