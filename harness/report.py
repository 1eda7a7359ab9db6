"""report.md of one run: the EI trajectory table and a plot beside it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .rundir import DIAGNOSTICS_FILE, atomic_write_text, read_jsonl

PLOT_FILE = "ei_trajectory.png"


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return str(value)


def plot_ei(records: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in records]
    ei = [r.get("ei") if r.get("ei") is not None else math.nan for r in records]
    sd = [r.get("ei_sd") if r.get("ei_sd") is not None else 0.0 for r in records]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    ax.plot(steps, ei, marker="o", color="tab:blue", label="EI (mean over held-out splits)")
    ax.fill_between(steps, [max(0.0, e - s) for e, s in zip(ei, sd)], [e + s for e, s in zip(ei, sd)],
                    color="tab:blue", alpha=0.2, label="± 1 SD over splits (EI ≥ 0)")
    null = [r.get("ei_null") for r in records]
    if any(v is not None for v in null):
        ax.plot(steps, [v if v is not None else math.nan for v in null], ls="--", color="grey",
                label="null baseline (permuted labels)")
    ax.set_xlabel("training step")
    ax.set_ylabel("entanglement intensity (EI)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)


def write_run_report(run_dir: Path, run_record: dict[str, Any]) -> Path:
    """Write report.md (trajectory table) and the EI plot; returns the report path."""
    records = [r for r in read_jsonl(run_dir / DIAGNOSTICS_FILE) if "event" not in r]
    config = run_record.get("config", {})
    title = f"{config.get('model', '?')} + {config.get('companion', '?')}, seed {config.get('seed', '?')}"
    lines = [
        f"# Run report: {title}",
        "",
        f"- status: **{run_record.get('status', '?')}**",
        f"- quantisation: {run_record.get('quantization', '?')}; weights: {run_record.get('weights_source', '?')}",
        f"- steps: {config.get('steps', '?')}, diagnostics every {config.get('diag_every', '?')} steps, "
        f"companion share {config.get('companion_share', '?')}",
    ]
    parent = run_record.get("parent")
    if parent:
        lines.append(
            f"- continued from the adapter of [{parent['run_dir']}]({parent['run_dir']}/report.md) at step "
            f"{parent['step']} ({parent.get('model')} + {parent.get('companion')}, seed {parent.get('seed')}, "
            f"EI there {_fmt(parent.get('ei_at_step'))})"
        )
    lines += [
        "",
        "## EI trajectory",
        "",
    ]
    if records:
        plot_ei(records, run_dir / PLOT_FILE, title)
        lines += [f"![EI trajectory]({PLOT_FILE})", ""]
        concepts = sorted({c for r in records for c in (r.get("accuracy") or {})})
        header = ["step", "EI", "EI SD", "null EI", "V-purity", "top SV", "SV1/SV2", "margin (norm.)"]
        header += [f"{c} acc" for c in concepts] + ["loss"]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for r in records:
            row = [r["step"], r.get("ei"), r.get("ei_sd"), r.get("ei_null"), r.get("v_purity"), r.get("top_sv"),
                   r.get("sv_ratio"), r.get("margin_normalized")]
            row += [(r.get("accuracy") or {}).get(c) for c in concepts] + [r.get("train_loss")]
            lines.append("| " + " | ".join(_fmt(v) for v in row) + " |")
        flags = records[-1].get("flags") or []
        if flags:
            lines += ["", f"## Flags at step {records[-1]['step']}", ""]
            lines += [f"- {f.get('message', f) if isinstance(f, dict) else f}" for f in flags]
    else:
        lines.append("No diagnostic records yet.")
    events = run_record.get("events") or []
    if events:
        lines += ["", "## Events", ""] + [f"- step {e.get('step')}: {e.get('event')} — {e.get('detail', '')}" for e in events]
    path = run_dir / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
