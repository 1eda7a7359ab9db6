"""Where a real `ent run` step goes: the CLI in-process, with wall times of each phase of the training loop.

Wraps forward_backward, the data stream's next_batch, gradient clipping, the adapter-norm guard, the NaN-guard
snapshot, diagnose and publish with timers, marks each step's start, and records a torch.profiler window of
three steps (from step 40). Writes runprof.json (median and total of each phase, median step-to-step time
away from diagnostic and snapshot steps), run-profile.txt and run-trace.json under OUT.

    python bench/run_loop_profile.py $OUT run --model qwen2.5-coder-7b --random-weights --steps 70 --diag-every 60 --offline --out RUN_DIR
"""
import json
import os
import sys
import time
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

import ent_harness.trainer as tr
import torch
from ent_harness import data

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
PROFILE_FROM, PROFILE_STEPS = 40, 3
times = defaultdict(list)
marks = []
prof = None

def timed(label, fn):
    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            times[label].append(time.perf_counter() - t)
    return wrapper

orig_seed = tr.dropout_seed
def step_hook(seed, step, micro):
    global prof
    marks.append((step, time.perf_counter()))
    if step == PROFILE_FROM:
        from torch.profiler import ProfilerActivity, profile
        prof = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
        prof.__enter__()
    if step == PROFILE_FROM + PROFILE_STEPS and prof is not None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        prof.__exit__(None, None, None)
        ka = prof.key_averages()
        Path(f"{out}/run-profile.txt").write_text(ka.table(sort_by="cuda_time_total", row_limit=40) + "\n\nCPU\n" + ka.table(sort_by="cpu_time_total", row_limit=40))
        prof.export_chrome_trace(f"{out}/run-trace.json")
    return orig_seed(seed, step, micro)

tr.dropout_seed = step_hook
tr.forward_backward = timed("forward_backward", tr.forward_backward)
tr.adapter_norm = timed("adapter_norm", tr.adapter_norm)
data.MixedBatches.next_batch = timed("next_batch", data.MixedBatches.next_batch)
torch.nn.utils.clip_grad_norm_ = timed("clip_grad_norm", torch.nn.utils.clip_grad_norm_)
tr.Snapshot.take = classmethod(timed("snapshot", tr.Snapshot.take.__func__))
tr.Trainer.diagnose = timed("diagnose", tr.Trainer.diagnose)
tr.Trainer.publish = timed("publish", tr.Trainer.publish)
from ent_harness.cli import main

try:
    main(sys.argv[2:])
except SystemExit:
    pass
steps = [(s, t) for s, t in marks]
gaps = {s2: t2 - t1 for (s1, t1), (s2, t2) in pairwise(steps) if s2 == s1 + 1}
steady = [g for s, g in gaps.items() if s > 20 and s % 50 not in (0, 1)]
res = {"phases": {k: {"n": len(v), "median": sorted(v)[len(v) // 2], "sum": sum(v)} for k, v in times.items()},
       "step_gap_median": sorted(steady)[len(steady) // 2] if steady else None, "step_gaps": gaps}
Path(f"{out}/runprof.json").write_text(json.dumps(res, indent=1))
print(json.dumps({k: v for k, v in res.items() if k != "step_gaps"}, indent=1))
