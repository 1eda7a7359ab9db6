"""Probe pass A/B on a GPU: the 4-bit path against the dequantised one-pass path (harness/speed.py), same process.

Builds ent's fast plan on a model twin, trains a few steps, then times probe activations and whole diagnostic
steps (activations + metric suite) first with ``speed.bnb_dequantizes`` forced False (the previous path:
bitsandbytes' 4-bit layer and PEFT's three element-wise passes), then as shipped; checks the rows are equal
bit for bit. Writes probe_pass-MODEL.json and a torch.profiler table under OUT.

    python bench/probe_pass_ab.py $OUT qwen2.5-coder-7b
"""
import json
import os
import statistics
import sys
import time
import types
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np
import qlora_throughput as q
import torch
from ent_harness import speed
from ent_harness.config import RunConfig
from ent_harness.diagnostics import run_metric_suite
from ent_harness.modeling import terminal_activations
from ent_harness.plugin_manager import build_registry
from ent_harness.probes import probe_labels
from ent_plugins.probes.builtin import factorial_v1

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
name = sys.argv[2] if len(sys.argv) > 2 else "qwen2.5-coder-7b"
reg = build_registry()
spec = reg.get("model", name)
args = types.SimpleNamespace(device="cuda", batch=4, seq_len=1024, seed=0)
model, step, info, loaded = q.build_ent(spec, reg, args, q.parse_variant("ent"))
data = q.batches(152000, 10, 4, 1024, 0)
for ids in data[:3]:
    step(ids.cuda())
torch.cuda.synchronize()
st = []
for ids in data[3:]:
    t = time.perf_counter(); step(ids.cuda()); torch.cuda.synchronize(); st.append(time.perf_counter() - t)
step_s = statistics.median(st)
d = RunConfig(model="bench")
B, M = d.probe_batch_size, d.probe_max_tokens
probes = factorial_v1(); texts = [p.text for p in probes]; labels = probe_labels(probes); ids_ = [p.id for p in probes]
metrics = reg.all("metric")
res = {"plan": info["plan"], "step_s": st, "step_median_s": step_s}

def acts():
    r = terminal_activations(loaded, texts, B, M); torch.cuda.synchronize(); return r

def diag_step(base):
    a = acts(); run_metric_suite(reg, a, labels, 0, base, metrics, ids_); return a

def times(fn, n=7):
    fn(); ts = []
    for _ in range(n):
        t = time.perf_counter(); r = fn(); ts.append(time.perf_counter() - t)
    return ts, r

new_bnb = speed.bnb_dequantizes
speed.bnb_dequantizes = lambda x: False  # the previous path: the 4-bit layer and PEFT's three passes
old_ts, old = times(acts)
base = old + 0.0
old_diag, _ = times(lambda: diag_step(base))
speed.bnb_dequantizes = new_bnb
new_ts, new = times(acts)
new_diag, _ = times(lambda: diag_step(base))
res.update(acts_old=old_ts, acts_new=new_ts, diag_old=old_diag, diag_new=new_diag,
           identical=bool(np.array_equal(old, new)), maxdiff=float(np.abs(old - new).max()),
           overhead_old=statistics.median(old_diag) / (100 * step_s), overhead_new=statistics.median(new_diag) / (100 * step_s),
           overhead_new_max=max(new_diag) / (100 * step_s))
print({k: v for k, v in res.items() if k != "plan"}, flush=True)
from torch.profiler import ProfilerActivity, profile

with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
    acts()
ka = prof.key_averages()
Path(f"{out}/probe_pass-profile-{name}.txt").write_text(
    ka.table(sort_by="cuda_time_total", row_limit=30) + "\n\nCPU\n" + ka.table(sort_by="cpu_time_total", row_limit=30))
Path(f"{out}/probe_pass-{name}.json").write_text(json.dumps(res, indent=1))
