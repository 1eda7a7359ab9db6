"""The paper-style tables, built from run data alone. Each table is a header plus rows of plain values;
``to_markdown`` and ``write_csv`` render it."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .collapse import collapse_step, recovery_steps
from .rundata import RunData


@dataclass
class Table:
    name: str
    title: str
    header: list[str]
    rows: list[list[Any]]
    note: str = ""


def fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        return f"{value:.3f}" if value == 0 or 1e-3 <= abs(value) < 1e4 else f"{value:.2e}"
    return str(value)


def to_markdown(table: Table) -> str:
    lines = [f"### {table.title}", ""]
    if table.note:
        lines += [table.note, ""]
    lines.append("| " + " | ".join(table.header) + " |")
    lines.append("|" + "---|" * len(table.header))
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in table.rows]
    return "\n".join(lines) + "\n"


def write_csv(table: Table, folder: Path) -> Path:
    path = folder / f"{table.name}.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(table.header)
        writer.writerows([["" if v is None else v for v in row] for row in table.rows])
    return path


def _mean_sd(values: list[float]) -> tuple[float, float | None]:
    arr = np.array(values, dtype=float)
    return float(arr.mean()), (float(arr.std(ddof=1)) if arr.size > 1 else None)


def conditions(runs: list[RunData]) -> dict[str, list[RunData]]:
    grouped: dict[str, list[RunData]] = defaultdict(list)
    for run in runs:
        grouped[run.condition].append(run)
    return dict(grouped)


def runs_table(runs: list[RunData]) -> Table:
    rows = []
    for run in runs:
        rows.append([str(run.run_dir), run.model, run.companion, run.seed, run.status, run.steps[-1],
                     run.first.get("ei"), run.last.get("ei"), collapse_step(run.steps, run.series("ei")),
                     ", ".join(map(str, recovery_steps(run.steps, run.series("ei")))) or None])
    return Table("runs", "Runs", ["run", "model", "companion", "seed", "status", "last step", "base EI",
                                  "final EI", "collapse step", "recoveries"], rows)


def collapse_table(runs: list[RunData]) -> Table | None:
    concepts = sorted({c for run in runs for r in run.records for c in (r.get("accuracy") or {})})
    rows = []
    for run in runs:
        step = collapse_step(run.steps, run.series("ei"))
        if step is None:
            continue
        record = run.at(step) or {}
        accuracy = record.get("accuracy") or {}
        rows.append([run.condition, run.seed, step, *[accuracy.get(c) for c in concepts], record.get("v_purity")])
    if not rows:
        return None
    numeric = [[v for v in col if isinstance(v, (int, float))] for col in zip(*[r[2:] for r in rows], strict=True)]
    rows.append(["mean", "", *[float(np.mean(col)) if col else None for col in numeric]])
    return Table("collapse", "Collapse table: step of permanent EI = 0, with accuracy and V-purity there",
                 ["condition", "seed", "collapse step", *[f"{c} acc" for c in concepts], "V-purity"], rows)


def trajectory_table(runs: list[RunData]) -> Table:
    groups = conditions(runs)
    names = list(groups)
    steps = sorted({s for run in runs for s in run.steps})
    header = ["step"]
    for name in names:
        header += [f"{name} mean", f"{name} SD", f"{name} n"]
    ratio = len(names) == 2
    if ratio:
        header.append(f"ratio ({names[0]}) / ({names[1]})")
    rows = []
    for step in steps:
        row: list[Any] = [step]
        means = []
        for name in names:
            values = [r["ei"] for run in groups[name] if (r := run.at(step)) and r.get("ei") is not None]
            if values:
                mean, sd = _mean_sd(values)
                row += [mean, sd, len(values)]
                means.append(mean)
            else:
                row += [None, None, 0]
                means.append(None)
        if ratio:
            a, b = means
            row.append(a / b if a is not None and b not in (None, 0) else None)
        rows.append(row)
    return Table("trajectory", "EI trajectory: mean and SD across seeds per condition", header, rows)


def sv_dynamics_table(runs: list[RunData]) -> Table | None:
    rows = [[run.condition, run.seed, r["step"], r.get("top_sv"), r.get("sv_ratio"), r.get("concentration"),
             r.get("effective_rank")] for run in runs for r in run.records if r.get("top_sv") is not None]
    if not rows:
        return None
    return Table("sv_dynamics", "Singular-value dynamics", ["condition", "seed", "step", "top SV", "SV1/SV2",
                                                             "concentration", "effective rank"], rows)


def _per_model(runs: list[RunData]) -> dict[str, list[RunData]]:
    grouped: dict[str, list[RunData]] = defaultdict(list)
    for run in runs:
        grouped[run.model].append(run)
    return dict(grouped)


def margin_table(runs: list[RunData]) -> Table | None:
    rows = []
    for model, model_runs in _per_model(runs).items():
        base = model_runs[0].first
        if base.get("margin") is None:
            continue
        rows.append([model, base.get("ei"), base.get("margin"), base.get("margin_normalized"),
                     (base.get("accuracy") or {}).get("domain"), base.get("v_purity")])
    if not rows:
        return None
    return Table("margin", "Non-degeneracy margin of the base models (hypothesis A)",
                 ["model", "EI", "margin (raw)", "margin (normalized)", "domain acc", "V-purity"], rows,
                 "The raw margin is in activation units squared and not comparable across models; the normalized "
                 "margin divides by each direction's total variance.")


def change_table(runs: list[RunData], name: str, title: str, with_family: bool = False) -> Table | None:
    per_model = _per_model(runs)
    if len(per_model) < 2:
        return None
    rows = []
    for model, model_runs in per_model.items():
        base = float(np.mean([r.first["ei"] for r in model_runs if r.first.get("ei") is not None]))
        final = float(np.mean([r.last["ei"] for r in model_runs if r.last.get("ei") is not None]))
        change = (final - base) / base * 100 if base else None
        row = [model]
        if with_family:
            row.append(model_runs[0].info.get("family"))
        row += [base, final, change, len(model_runs), model_runs[0].last.get("margin")]
        rows.append(row)
    header = ["model", *(["family"] if with_family else []), "base EI", "final EI", "ΔEI %", "seeds", "final margin"]
    return Table(name, title, header, rows)


def composition_table(runs: list[RunData]) -> Table | None:
    rows = []
    for model, model_runs in _per_model(runs).items():
        battery = model_runs[0].first.get("cross_domain") or {}
        mean = battery.get("mean") or {}
        if not mean:
            continue
        rows.append([model, mean.get("centroid_cosine"), mean.get("subspace_overlap"), mean.get("binary_accuracy"),
                     model_runs[0].first.get("ei")])
    if not rows:
        return None
    return Table("composition", "Cross-domain structure of the base models (hypothesis B)",
                 ["model", "centroid cosine", "subspace overlap", "binary LOO acc", "EI"], rows)
