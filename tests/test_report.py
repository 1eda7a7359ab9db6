"""`ent report` from run directories alone: collapse logic, tables, figures, summary.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_ent
from ent_harness.reporting import collapse_step, recovery_steps

STEPS = list(range(0, 5001, 500))
SEED5 = [0.622, 0.41, 0.35, 0.40, 0.0, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0]
SEED6 = [0.622, 0.39, 0.33, 0.42, 0.12, 0.0, 0.452, 0.0, 0.0, 0.0, 0.0]
B2_LIKE = [0.622, 0.329, 0.290, 0.450, 0.404, 0.398, 0.377, 0.407, 0.397, 0.427, 0.350]


def make_run(folder: Path, companion: str, seed: int, eis: list[float], extra: bool = False) -> Path:
    """A minimal run directory: run.json with model/companion/seed, diagnostics with step and ei."""
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"model": "qwen2.5-coder-32b", "companion": companion, "seed": seed}))
    lines = []
    for step, ei in zip(STEPS, eis, strict=True):
        record: dict = {"step": step, "ei": ei}
        if extra:
            record.update({"accuracy": {"domain": 0.98, "register": 0.8, "shape": 0.9}, "v_purity": 0.6,
                           "top_sv": 0.01 * (1 + step / 100), "sv_ratio": 1.3, "concentration": 6.0 + step / 1000,
                           "margin": 1.78, "margin_normalized": 0.1, "damage": [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1],
                                                                                [0.1, 0.1, 0.8]]})
        lines.append(json.dumps(record))
    (folder / "diagnostics.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_collapse_and_recovery_follow_the_papers_seeds_5_and_6() -> None:
    assert collapse_step(STEPS, SEED5) == 3000 and recovery_steps(STEPS, SEED5) == [2500]
    assert collapse_step(STEPS, SEED6) == 3500 and recovery_steps(STEPS, SEED6) == [3000]
    assert collapse_step(STEPS, B2_LIKE) is None and recovery_steps(STEPS, B2_LIKE) == []
    assert collapse_step([0, 1, 2], [0.0, 0.0, 0.0]) == 0  # never above zero: collapsed from the start
    assert collapse_step([0, 1, 2], [0.5, None, 0.0]) == 2  # missing values are skipped


def test_report_from_minimal_run_directories(tmp_path) -> None:
    runs = [make_run(tmp_path / "b3-s5", "nl", 5, SEED5, extra=True), make_run(tmp_path / "b3-s6", "nl", 6, SEED6),
            make_run(tmp_path / "b2-s5", "math", 5, B2_LIKE, extra=True)]
    out = tmp_path / "report"
    result = run_ent("report", *map(str, runs), "-o", str(out))
    assert result.returncode == 0, result.stderr
    summary = {Path(r["run_dir"]).name: r for r in json.loads((out / "summary.json").read_text())["runs"]}
    assert summary["b3-s5"]["collapse_step"] == 3000 and summary["b3-s5"]["recovery_steps"] == [2500]
    assert summary["b3-s6"]["collapse_step"] == 3500 and summary["b3-s6"]["recovery_steps"] == [3000]
    assert summary["b2-s5"]["collapse_step"] is None and summary["b2-s5"]["recovery_steps"] == []
    report = (out / "report.md").read_text()
    for title in ("Collapse table", "EI trajectory", "Singular-value dynamics", "ratio"):
        assert title in report
    trajectory = (out / "trajectory.csv").read_text().splitlines()
    header, step_3000 = trajectory[0].split(","), trajectory[7].split(",")
    assert step_3000[0] == "3000"
    b3_mean = float(step_3000[header.index("qwen2.5-coder-32b + nl mean")])
    assert b3_mean == pytest.approx((0.0 + 0.452) / 2)
    for figure in ("ei_trajectory.png", "sv_concentration.png", "damage_heatmaps.png", "margin.png"):
        assert (out / figure).stat().st_size > 10_000, figure
    assert (out / "collapse.csv").is_file() and (out / "runs.csv").is_file()


def test_report_rejects_incomplete_directories(tmp_path) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "run.json").write_text(json.dumps({"model": "m", "companion": "nl"}))
    result = run_ent("report", str(tmp_path / "bad"), "-o", str(tmp_path / "out"))
    assert result.returncode == 2 and "missing key 'seed'" in result.stderr
    good = make_run(tmp_path / "good", "nl", 1, SEED5)
    (good / "diagnostics.jsonl").write_text('{"step": 0}\n')
    result = run_ent("report", str(good), "-o", str(tmp_path / "out"))
    assert result.returncode == 2 and "diagnostics.jsonl:1" in result.stderr and "'ei'" in result.stderr
