"""The NaN guard's snapshot on a GPU: host copies of the adapter and its optimiser state, before and after.

`ent run` takes one at every checkpoint and every `snapshot_every` (50) steps. Before: every tensor copied
into freshly allocated pageable host memory (`.to("cpu", copy=True)`), which blocks the training loop until
each copy lands. Now (harness/guard.py): asynchronous copies into page-locked buffers reused from the
previous snapshot. Adapter shapes of a model zoo entry (LoRA r on the seven linears), fused AdamW states.

    python bench/guard_snapshot.py --model qwen2.5-coder-7b --out $OUT
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from pathlib import Path


def old_take(trainable: list, optimizer) -> tuple[list, dict]:
    """harness/guard.py's Snapshot.take before it reused page-locked buffers."""
    params = [p.detach().to("cpu", copy=True) for p in trainable]
    state = optimizer.state_dict()
    return params, {"state": {i: {k: (v.detach().to("cpu", copy=True) if hasattr(v, "detach") else copy.deepcopy(v))
                                  for k, v in entry.items()} for i, entry in state["state"].items()},
                    "param_groups": copy.deepcopy(state["param_groups"])}


def main() -> None:
    import torch
    from ent_harness.guard import Snapshot
    from ent_harness.modeling import model_config
    from ent_harness.plugin_manager import build_registry

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-7b")
    parser.add_argument("--rank", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", default=os.environ.get("OUT", "."))
    args = parser.parse_args()
    config = model_config(build_registry().get("model", args.model))
    hidden, inter = int(config["hidden_size"]), int(config["intermediate_size"])
    kv = int(config["num_key_value_heads"]) * int(config.get("head_dim") or hidden // int(config["num_attention_heads"]))
    shapes = [(hidden, hidden), (hidden, kv), (hidden, kv), (hidden, hidden), (hidden, inter), (hidden, inter),
              (inter, hidden)]
    trainable = []
    for _ in range(int(config["num_hidden_layers"])):
        for fan_in, fan_out in shapes:
            trainable += [torch.nn.Parameter(torch.randn(args.rank, fan_in, device=args.device) * 0.01),
                          torch.nn.Parameter(torch.randn(fan_out, args.rank, device=args.device) * 0.01)]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4, fused=args.device == "cuda")
    for p in trainable:
        p.grad = torch.randn_like(p) * 1e-3
    optimizer.step()
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    sync()

    def timed(fn) -> tuple[float, float, object]:
        """(seconds the loop is blocked, seconds until the copies have landed, what fn returned)"""
        start = time.perf_counter()
        result = fn()
        blocked = time.perf_counter() - start
        sync()
        return blocked, time.perf_counter() - start, result

    old = [timed(lambda: old_take(trainable, optimizer))[:2] for _ in range(args.repeats)]
    snapshot = None
    new = []
    for _ in range(args.repeats + 1):  # the first allocates the page-locked buffers
        blocked, landed, snapshot = timed(lambda: Snapshot.take(1, trainable, optimizer, reuse=snapshot))
        new.append((blocked, landed))
    first_new, new = new[0], new[1:]
    nbytes = sum(p.numel() * 4 * 3 for p in trainable)
    result = {"model": args.model, "rank": args.rank, "gigabytes": nbytes / 1e9, "device": args.device,
              "gpu": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
              "old_blocked_s": statistics.median(b for b, _ in old), "old_landed_s": statistics.median(t for _, t in old),
              "new_blocked_s": statistics.median(b for b, _ in new), "new_landed_s": statistics.median(t for _, t in new),
              "new_first_take_s": first_new[1], "samples": {"old": old, "new": new}}
    result["ratio_landed"] = result["old_landed_s"] / result["new_landed_s"]
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=1))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / f"guard_snapshot-{args.model}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
