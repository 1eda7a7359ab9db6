"""Benchmark of the whole geometry metric suite on one CPU core (metrics spec property 9.6).

Times every built-in metric plugin's ``compute`` on one fresh ``GeometryAnalysis`` (S = 10 splits used
both ways, the null baseline and CKA drift against base activations included), on a 4 x 2 x 4 factorial
design: n = 512 probes (16 per cell), d = 5120, and n = 1024 (32 per cell), d = 8192. Median of 3 runs after
one warm-up. The target is under 5 s at n = 512, d = 5120.

    python bench/metrics.py            # print the table
    python bench/metrics.py --write    # also update the "## Metric suite (CPU)" section of BENCHMARKS.md

Needs the project importable (``pip install -e .``) or ``PYTHONPATH`` pointing at ``ent_harness`` and
``ent_plugins``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # one core: must happen before numpy is imported

import argparse  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402
from ent_harness.geometry import GeometryAnalysis, GeometryConfig, factorial_labels, synthetic_activations  # noqa: E402
from ent_harness.specs import resolve_target  # noqa: E402
from ent_plugins.metrics import builtin_metric_specs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Metric suite (CPU)"
CASES = ((16, 5120), (32, 8192))  # (probes per cell, d) for the 4 x 2 x 4 design: n = 512, 1024
TARGET_S = 5.0
STAGES = ("gram", "fit + spectrum + sigma + accuracy", "held-out (EI, damage)", "null baseline",
          "cross-domain", "drift (base Gram + CKA)")


def _limit_threads() -> str:
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        return "environment variables only"
    threadpool_limits(1)
    parts = [f"{p.get('internal_api')} {p.get('version')} ({p.get('threading_layer', '?')}, "
             f"{p.get('num_threads')} thread)" for p in threadpool_info()]
    return "; ".join(parts) or "none detected"


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        match = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        if match:
            return match.group(1).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _blas_info() -> str:
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # noqa: BLE001 - informational only
        return "unknown"


def _data(per_cell: int, d: int):
    labels = factorial_labels((4, 2, 4), per_cell=per_cell, seed=0)
    X = synthetic_activations(labels, "entangled", d=d, noise=0.003, seed=0)
    base = synthetic_activations(labels, "block", d=d, noise=0.003, seed=1)
    return labels, X, base


def run_suite_once(labels, X, base) -> tuple[float, dict[str, float], dict]:
    """One full suite on a fresh analysis: total seconds, per-stage seconds and the record."""
    specs = builtin_metric_specs()
    t0 = time.perf_counter()
    analysis = GeometryAnalysis(X, labels, GeometryConfig(n_splits=10), base_X=base)
    stages: dict[str, float] = {}
    t = time.perf_counter()
    _ = analysis.gram
    stages["gram"] = time.perf_counter() - t
    order = {
        "fit + spectrum + sigma + accuracy": ("spectrum", "v-purity", "margin", "accuracy"),
        "held-out (EI, damage)": ("entanglement", "damage"),
        "null baseline": ("null-baseline",),
        "cross-domain": ("cross-domain",),
        "drift (base Gram + CKA)": ("drift",),
    }
    by_name = {s.name: s for s in specs}
    record: dict = {}
    for stage, names in order.items():
        t = time.perf_counter()
        for name in names:
            record.update(resolve_target(by_name[name].compute)(analysis))
        stages[stage] = time.perf_counter() - t
    record["flags"] = analysis.flags
    total = time.perf_counter() - t0
    assert set(by_name) == {n for names in order.values() for n in names}, "a metric is missing from the bench"
    return total, stages, record


def bench_case(per_cell: int, d: int, repeats: int = 3) -> dict:
    labels, X, base = _data(per_cell, d)
    run_suite_once(labels, X, base)  # warm-up
    runs = [run_suite_once(labels, X, base) for _ in range(repeats)]
    totals = [r[0] for r in runs]
    stages = {s: statistics.median(r[1][s] for r in runs) for s in STAGES}
    record = runs[0][2]
    return {"n": labels.n, "d": d, "median": statistics.median(totals), "min": min(totals), "max": max(totals),
            "stages": stages, "ei": record["ei"], "ei_null": record["ei_null"]}


def table(results: list[dict]) -> str:
    head = "| n | d | median (s) | min-max (s) | " + " | ".join(STAGES) + " |"
    sep = "|" + "---|" * (4 + len(STAGES))
    rows = [
        f"| {r['n']} | {r['d']} | {r['median']:.2f} | {r['min']:.2f}-{r['max']:.2f} | "
        + " | ".join(f"{r['stages'][s]:.2f}" for s in STAGES) + " |"
        for r in results
    ]
    return "\n".join([head, sep, *rows])


def section_text(results: list[dict], threads: str) -> str:
    r512 = next((r for r in results if r["n"] == 512), results[0])
    verdict = "meets" if r512["median"] < TARGET_S else "MISSES"
    return "\n".join([
        SECTION,
        "",
        "Whole metric suite (every built-in metric plugin on one fresh `GeometryAnalysis`: Gram, ridge + SVD, "
        "spectrum, V-purity, sigma/margins, closed-form LOO accuracy, EI + carry + damage over S = 10 splits used "
        "both ways, the null baseline, the cross-domain battery and CKA drift against base activations), "
        "synthetic entangled data on a 4 x 2 x 4 design, float64, ONE CPU core, median of 3 runs after a warm-up. "
        "Stage columns are medians in seconds.",
        "",
        table(results),
        "",
        f"Target (spec 9.6): under {TARGET_S:.0f} s at n = 512, d = 5120: {verdict} it "
        f"({r512['median']:.2f} s).",
        "",
        "- command: `python bench/metrics.py --write`",
        f"- CPU: {_cpu_model()} ({os.cpu_count()} logical cores on the machine; 1 used)",
        f"- Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}",
        f"- BLAS: {_blas_info()}; thread pools: {threads}",
        f"- date: {time.strftime('%Y-%m-%d')}",
        "",
    ])


def write_section(text: str, path: Path) -> None:
    """Replace (or append) only the metric-suite section of BENCHMARKS.md."""
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(old):
        new = pattern.sub(lambda _: text.rstrip("\n") + "\n\n", old, count=1)
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new.rstrip("\n") + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="update the section of BENCHMARKS.md")
    parser.add_argument("--small-only", action="store_true", help="only n = 512, d = 5120")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    threads = _limit_threads()
    results = []
    for per_cell, d in CASES[:1] if args.small_only else CASES:
        res = bench_case(per_cell, d, args.repeats)
        print(f"n={res['n']:5d} d={res['d']:5d}: median {res['median']:.2f} s "
              f"(EI {res['ei']:.3f}, null {res['ei_null']:.3f})", flush=True)
        results.append(res)
    print()
    print(table(results))
    text = section_text(results, threads)
    if args.write:
        write_section(text, ROOT / "BENCHMARKS.md")
        print(f"\nwrote the '{SECTION}' section of {ROOT / 'BENCHMARKS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
