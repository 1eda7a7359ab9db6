"""`ent experiment`: plans of runs on tiny models, re-use of finished runs, base-only experiments, reports."""

from __future__ import annotations

import json

import pytest

from conftest import run_ent

TINY = ["--steps", "20", "--diag-every", "10"]


@pytest.mark.slow
def test_dynamics_runs_both_conditions_and_reuses_finished_runs(tmp_path) -> None:
    out = tmp_path / "dynamics"
    result = run_ent("experiment", "dynamics", "--model", "tiny-qwen2", "--seeds", "2", *TINY, "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert runs == ["tiny-qwen2-math-s0", "tiny-qwen2-math-s1", "tiny-qwen2-nl-s0", "tiny-qwen2-nl-s1"]
    started = {name: json.loads((out / "runs" / name / "run.json").read_text())["started"] for name in runs}
    report = (out / "report" / "report.md").read_text()
    assert "ratio (tiny-qwen2 + nl) / (tiny-qwen2 + math)" in report
    assert (out / "report" / "ei_trajectory.png").stat().st_size > 10_000
    summary = json.loads((out / "report" / "summary.json").read_text())
    assert len(summary["runs"]) == 4 and all("collapse_step" in r for r in summary["runs"])

    again = run_ent("experiment", "dynamics", "--model", "tiny-qwen2", "--seeds", "2", *TINY, "--out", str(out))
    assert again.returncode == 0 and "ent run" not in again.stderr  # nothing trained again
    assert started == {name: json.loads((out / "runs" / name / "run.json").read_text())["started"] for name in runs}
    rebuilt = run_ent("experiment", "dynamics", "--model", "tiny-qwen2", "--seeds", "2", "--rebuild", "--out", str(out))
    assert rebuilt.returncode == 0


def test_margin_and_composition_diagnose_base_models_only(tmp_path) -> None:
    out = tmp_path / "margin"
    result = run_ent("experiment", "margin", "--model", "tiny-qwen2", "--model", "tiny-llama", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (out / "runs").exists()  # no training
    report = (out / "report" / "report.md").read_text()
    assert "Non-degeneracy margin" in report and "tiny-llama" in report
    out = tmp_path / "composition"
    result = run_ent("experiment", "composition", "--model", "tiny-mistral", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Cross-domain structure" in (out / "report" / "report.md").read_text()


@pytest.mark.slow
def test_scale_ladder_and_cross_architecture_take_twins_and_steps(tmp_path) -> None:
    out = tmp_path / "ladder"
    result = run_ent("experiment", "scale-ladder", "--model", "tiny-qwen2", "--model", "tiny-llama",
                     "--random-weights", "--steps", "10", "--diag-every", "10", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    report = (out / "report" / "report.md").read_text()
    assert "Scale ladder" in report and "Cross-architecture" in report
    assert "tiny-qwen2-nl-s42" in {p.name for p in (out / "runs").iterdir()}


@pytest.mark.slow
def test_reversibility_links_parent_and_child(tmp_path) -> None:
    out = tmp_path / "rev"
    result = run_ent("experiment", "reversibility", "--model", "tiny-qwen2", *TINY, "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    child = json.loads((out / "runs" / "tiny-qwen2-math-s0-from-nl" / "run.json").read_text())
    assert child["parent"]["companion"] == "nl"
    assert "Reversibility" in (out / "report" / "report.md").read_text()


def test_unknown_experiment_and_missing_rebuild(tmp_path) -> None:
    result = run_ent("experiment", "dynamcs")
    assert result.returncode == 2 and "Did you mean: dynamics" in result.stderr
    result = run_ent("experiment", "margin", "--model", "tiny-qwen2", "--rebuild", "--out", str(tmp_path / "none"))
    assert result.returncode == 2 and "--rebuild" in result.stderr
