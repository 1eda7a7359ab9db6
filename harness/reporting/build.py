"""`ent report RUN_DIR... -o OUT`: report.md, one CSV per table, PNG figures and summary.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import EntError
from ..rundir import atomic_write_text, write_json
from . import figures
from .collapse import collapse_step, recovery_steps
from .rundata import RunData, load_run
from .tables import (
    Table,
    change_table,
    collapse_table,
    composition_table,
    margin_table,
    runs_table,
    sv_dynamics_table,
    to_markdown,
    trajectory_table,
    write_csv,
)


def build_tables(runs: list[RunData]) -> list[Table]:
    candidates = [
        runs_table(runs),
        collapse_table(runs),
        trajectory_table(runs),
        sv_dynamics_table(runs),
        margin_table(runs),
        change_table(runs, "scale_ladder", "Scale ladder: EI before and after fine-tuning per model (hypothesis C)"),
        composition_table(runs),
        change_table(runs, "cross_architecture", "Cross-architecture response", with_family=True),
    ]
    return [table for table in candidates if table is not None]


def run_summary(run: RunData) -> dict[str, Any]:
    return {
        "run_dir": str(run.run_dir),
        "model": run.model,
        "companion": run.companion,
        "seed": run.seed,
        "status": run.status,
        "steps": run.steps,
        "base_ei": run.first.get("ei"),
        "final_ei": run.last.get("ei"),
        "collapse_step": collapse_step(run.steps, run.series("ei")),
        "recovery_steps": recovery_steps(run.steps, run.series("ei")),
        "parent": (run.info.get("parent") or {}).get("run_dir"),
    }


def write_report(run_dirs: list[str | Path], out: str | Path, title: str = "ent report") -> Path:
    if not run_dirs:
        raise EntError("No run directories given", "pass one or more RUN_DIRs")
    runs = [load_run(d) for d in run_dirs]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tables = build_tables(runs)
    figure_paths = [
        figures.ei_trajectory(runs, out / "ei_trajectory.png"),
        figures.sv_concentration(runs, out / "sv_concentration.png") if any(r.get("top_sv") for run in runs for r in run.records) else None,
        figures.damage_heatmaps(runs, out / "damage_heatmaps.png"),
        figures.margin_over_steps(runs, out / "margin.png"),
    ]
    lines = [f"# {title}", "", f"{len(runs)} runs. Tables are also written as CSV beside this file.", ""]
    lines += [f"![{p.stem}]({p.name})" for p in figure_paths if p is not None]
    lines.append("")
    for table in tables:
        lines.append(to_markdown(table))
        write_csv(table, out)
    parents = [run for run in runs if run.info.get("parent")]
    if parents:
        lines += ["### Reversibility", ""]
        for run in parents:
            parent = run.info["parent"]
            lines.append(f"- {run.run_dir} continues [{parent['run_dir']}]({parent['run_dir']}) at step "
                         f"{parent['step']} ({parent.get('companion')} -> {run.companion}): EI there "
                         f"{parent.get('ei_at_step')}, now {run.last.get('ei')}")
        lines.append("")
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    write_json(out / "summary.json", {"runs": [run_summary(run) for run in runs]})
    return out / "report.md"
