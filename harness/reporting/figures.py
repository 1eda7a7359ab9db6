"""Figures for `ent report`: readable by a person (labelled axes, legends, SD bands)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .rundata import RunData
from .tables import conditions


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    _pyplot().close(fig)
    return path


def _band(runs: list[RunData], key: str) -> tuple[list[int], np.ndarray, np.ndarray]:
    steps = sorted({s for run in runs for s in run.steps})
    means, sds = [], []
    for step in steps:
        values = [r[key] for run in runs if (r := run.at(step)) and isinstance(r.get(key), (int, float))
                  and math.isfinite(r[key])]
        means.append(np.mean(values) if values else np.nan)
        sds.append(np.std(values, ddof=1) if len(values) > 1 else 0.0)
    return steps, np.array(means), np.array(sds)


def ei_trajectory(runs: list[RunData], path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, group in conditions(runs).items():
        steps, mean, sd = _band(group, "ei")
        line = ax.plot(steps, mean, marker="o", ms=3, label=f"{name} (n={len(group)})")[0]
        ax.fill_between(steps, np.maximum(mean - sd, 0), mean + sd, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("training step")
    ax.set_ylabel("entanglement intensity (EI)")
    ax.set_title("EI trajectory per condition (mean ± 1 SD across seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def sv_concentration(runs: list[RunData], path: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, group in conditions(runs).items():
        for ax, key, label in ((axes[0], "concentration", "top-k / bottom singular values"),
                               (axes[1], "top_sv", "top singular value")):
            steps, mean, sd = _band(group, key)
            line = ax.plot(steps, mean, marker="o", ms=3, label=name)[0]
            ax.fill_between(steps, np.maximum(mean - sd, 1e-12), mean + sd, color=line.get_color(), alpha=0.2)
            ax.set_yscale("log")
            ax.set_xlabel("training step")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3, which="both")
    axes[0].set_title("Singular-value concentration")
    axes[1].set_title("Top singular value")
    axes[0].legend(fontsize=8)
    return _save(fig, path)


def damage_heatmaps(runs: list[RunData], path: Path, max_steps: int = 6) -> Path | None:
    groups = conditions(runs)
    shown = [(name, group[0]) for name, group in groups.items() if group[0].first.get("damage") is not None]
    if not shown:
        return None
    plt = _pyplot()
    concepts = list((shown[0][1].first.get("accuracy") or {}).keys())
    fig, axes = plt.subplots(len(shown), max_steps, figsize=(2.2 * max_steps, 2.3 * len(shown) + 0.8), squeeze=False,
                             layout="constrained")
    image = None
    for row, (name, run) in enumerate(shown):
        records = [r for r in run.records if r.get("damage") is not None]
        picks = [records[int(i)] for i in np.unique(np.linspace(0, len(records) - 1, min(max_steps, len(records))).round())]
        for col in range(max_steps):
            ax = axes[row][col]
            if col >= len(picks):
                ax.axis("off")
                continue
            matrix = np.array(picks[col]["damage"], dtype=float)
            image = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
            ax.set_title(f"step {picks[col]['step']}", fontsize=8)
            labels = concepts if len(concepts) == matrix.shape[0] else [str(i) for i in range(matrix.shape[0])]
            ax.set_xticks(range(len(labels)), labels, fontsize=6, rotation=45)
            ax.set_yticks(range(len(labels)), labels if col == 0 else [], fontsize=6)
            if col == 0:
                ax.set_ylabel(f"{name}\nablated group", fontsize=7)
    fig.suptitle("Damage matrix D[a, b]: share of concept b's held-out signal on directions serving concept a",
                 fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label="share of signal")
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def margin_over_steps(runs: list[RunData], path: Path) -> Path | None:
    if not any(r.get("margin_normalized") is not None for run in runs for r in run.records):
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, group in conditions(runs).items():
        steps, mean, sd = _band(group, "margin_normalized")
        line = ax.plot(steps, mean, marker="o", ms=3, label=name)[0]
        ax.fill_between(steps, np.maximum(mean - sd, 1e-12), mean + sd, color=line.get_color(), alpha=0.2)
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("normalized non-degeneracy margin")
    ax.set_title("Non-degeneracy margin over training (mean ± 1 SD)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _save(fig, path)
