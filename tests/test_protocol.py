"""The training protocol on tiny models: schedules, exact resume, the non-finite guard, atomic checkpoints,
reversibility. These are the guarantees a 5000-step 32B run depends on, exercised on the CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ent_command, run_ent
from ent_harness.config import RunConfig
from ent_harness.errors import EntError
from ent_harness.schedule import checkpoint_steps, diagnostic_steps

RUN = ["--model", "tiny-qwen2", "--companion", "nl", "--steps", "80", "--diag-every", "20", "--seed", "3"]
TIMING_KEYS = {"wall_time_s", "diagnostic_time_s", "adapter", "gpu_memory_gb"}


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "diagnostics.jsonl").read_text().splitlines() if line.strip()]


def metric_records(run_dir: Path) -> list[dict]:
    return [r for r in records(run_dir) if "event" not in r]


def assert_same_trajectory(a: Path, b: Path) -> None:
    ra, rb = metric_records(a), metric_records(b)
    assert [r["step"] for r in ra] == [r["step"] for r in rb]
    for x, y in zip(ra, rb):
        assert x["ei"] == pytest.approx(y["ei"], abs=1e-9), x["step"]
        for key in set(x) - TIMING_KEYS:
            if isinstance(x[key], float):
                assert x[key] == pytest.approx(y[key], rel=1e-9, abs=1e-12), (x["step"], key)
            else:
                assert x[key] == y[key], (x["step"], key)


def adapters_are_finite(run_dir: Path) -> None:
    import torch
    from safetensors.torch import load_file

    folders = sorted((run_dir / "adapters").glob("step-*"))
    assert folders
    for folder in folders:
        for name, tensor in load_file(str(folder / "adapter_model.safetensors")).items():
            assert torch.isfinite(tensor).all(), f"{folder.name}/{name}"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    result = run_ent("run", *RUN, "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    return out


def test_schedules() -> None:
    assert diagnostic_steps(5000, 500) == [0, *range(500, 5001, 500)]
    dense = diagnostic_steps(5000, 500, ["1500:3500:100"])
    assert {1500, 1600, 2100, 3500} <= set(dense) and 3600 not in dense and dense[0] == 0
    assert diagnostic_steps(90, 40) == [0, 40, 80, 90]  # the last step is always diagnosed
    assert checkpoint_steps(100, [0, 50, 100], 30) == {30, 50, 60, 90, 100}
    with pytest.raises(EntError):
        RunConfig(model="m", diag_windows=("3500:1500:100",))
    with pytest.raises(EntError):
        RunConfig(model="m", inject_faults=("nan-everything@3",))


@pytest.mark.slow
def test_sigkill_after_the_step_40_checkpoint_then_resume_equals_uninterrupted(tmp_path, uninterrupted) -> None:
    out = tmp_path / "run"
    process = subprocess.Popen([*ent_command(), "run", *RUN, "--out", str(out)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (out / "checkpoints" / "step-40").is_dir():
        assert process.poll() is None, "the run ended before its step-40 checkpoint"
        assert time.time() < deadline
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert json.loads((out / "run.json").read_text())["status"] == "running"  # a crash leaves it mid-run
    assert max(r["step"] for r in metric_records(out)) < 80
    result = run_ent("run", "--resume", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((out / "run.json").read_text())["status"] == "finished"
    assert_same_trajectory(out, uninterrupted)
    assert any(r.get("event") == "resumed" for r in records(out))


@pytest.mark.slow
def test_injected_crash_resume_is_exact(tmp_path, uninterrupted) -> None:
    out = tmp_path / "run"
    crashed = run_ent("run", *RUN, "--out", str(out), "--inject-fault", "crash@50")
    assert crashed.returncode == -signal.SIGKILL
    # a kill can also land between checkpoint 40 and its record: drop that record, resume must rebuild it
    lines = (out / "diagnostics.jsonl").read_text().splitlines()
    (out / "diagnostics.jsonl").write_text("\n".join(l for l in lines if json.loads(l)["step"] < 40) + "\n")
    assert run_ent("run", "--resume", str(out)).returncode == 0
    assert_same_trajectory(out, uninterrupted)


@pytest.mark.slow
def test_nan_adapter_is_rolled_back_and_never_saved(tmp_path) -> None:
    out = tmp_path / "run"
    result = run_ent("run", *RUN, "--out", str(out), "--inject-fault", "nan-adapter@30")
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "finished" and record["faults_fired"] == ["nan-adapter@30"]
    rollbacks = [e for e in record["events"] if e["event"] == "rollback"]
    assert len(rollbacks) == 1 and rollbacks[0]["step"] == 30 and rollbacks[0]["to_step"] == 20
    assert rollbacks[0]["lr_factor"] == 0.5
    assert any(r.get("event") == "rollback" for r in records(out))  # in diagnostics.jsonl too
    adapters_are_finite(out)
    assert [r["step"] for r in metric_records(out)] == [0, 20, 40, 60, 80]
    assert all(np.isfinite(r["ei"]) for r in metric_records(out))


@pytest.mark.slow
def test_repeated_non_finite_values_stop_the_run_as_diverged(tmp_path) -> None:
    out = tmp_path / "run"
    faults = [arg for step in (25, 26, 27) for arg in ("--inject-fault", f"nan-loss@{step}")]
    result = run_ent("run", *RUN, "--out", str(out), "--max-rollbacks", "2", *faults)
    assert result.returncode == 1
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "diverged"
    assert [e["event"] for e in record["events"]] == ["rollback", "rollback", "diverged"]
    adapters_are_finite(out)
    assert (out / "checkpoints" / "step-20").is_dir() and "diverged" in (out / "report.md").read_text()


@pytest.mark.slow
def test_a_failed_checkpoint_write_keeps_the_previous_one_and_resumes(tmp_path, uninterrupted) -> None:
    from ent_harness.checkpoint import latest_valid_checkpoint, list_checkpoints, verify_checkpoint

    out = tmp_path / "run"
    result = run_ent("run", *RUN, "--out", str(out), "--inject-fault", "write-fail@40")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr or "InjectedWriteError" in result.stderr
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "failed" and "injected write failure" in record["error"]
    assert list_checkpoints(out) == [20]
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]  # no half-written folder
    verify_checkpoint(out / "checkpoints" / "step-20")
    assert latest_valid_checkpoint(out) == out / "checkpoints" / "step-20"
    assert run_ent("run", "--resume", str(out)).returncode == 0
    assert_same_trajectory(out, uninterrupted)


@pytest.mark.slow
def test_reversibility_run_continues_a_parent_adapter_under_another_companion(tmp_path, uninterrupted) -> None:
    child = tmp_path / "child"
    result = run_ent("run", "--model", "tiny-qwen2", "--companion", "math", "--steps", "20", "--diag-every", "10",
                     "--seed", "3", "--init-adapter", f"{uninterrupted}:80", "--out", str(child))
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((child / "run.json").read_text())
    assert record["parent"]["step"] == 80 and record["parent"]["companion"] == "nl"
    assert record["lora"]["source"] == "parent adapter"
    parent_last = metric_records(uninterrupted)[-1]
    child_first = metric_records(child)[0]
    # step 0 of the child is the parent's adapter: same geometry as the parent measured at step 80
    assert child_first["ei"] == pytest.approx(parent_last["ei"], abs=1e-9)
    assert child_first["v_purity"] == pytest.approx(parent_last["v_purity"], rel=1e-9)
    assert child_first["cka_to_base"] < 1.0  # drift is measured against the base model, not the parent
    report = (child / "report.md").read_text()
    assert str(uninterrupted.resolve()) in report and "continued from the adapter" in report


def test_init_adapter_of_another_model_is_refused(tmp_path, uninterrupted) -> None:
    result = run_ent("run", "--model", "tiny-llama", "--init-adapter", str(uninterrupted), "--out", str(tmp_path / "x"))
    assert result.returncode == 2 and "trained model 'tiny-qwen2'" in result.stderr


def test_resume_refuses_changed_settings_and_finished_runs(uninterrupted) -> None:
    result = run_ent("run", "--resume", str(uninterrupted), "--lr", "0.1")
    assert result.returncode == 2 and "--lr cannot be combined with --resume" in result.stderr
    result = run_ent("run", "--resume", str(uninterrupted))
    assert result.returncode == 2 and "already finished" in result.stderr


def test_every_run_writes_tensorboard_events(uninterrupted) -> None:
    events = list((uninterrupted / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 1000
    record = json.loads((uninterrupted / "run.json").read_text())
    assert record["tensorboard"].startswith("tensorboard/")
    assert record["optimizer"] == "adamw (torch)" and record["gradient_checkpointing"] is False


@pytest.mark.slow
def test_sigterm_checkpoints_the_current_step_and_resume_is_exact(tmp_path, uninterrupted) -> None:
    out = tmp_path / "run"
    process = subprocess.Popen([*ent_command(), "run", *RUN, "--out", str(out)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (out / "checkpoints" / "step-20").is_dir():
        assert process.poll() is None and time.time() < deadline
        time.sleep(0.02)
    time.sleep(0.5)  # somewhere between checkpoints
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 1
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "interrupted" and record["events"][-1]["event"] == "interrupted"
    assert run_ent("run", "--resume", str(out)).returncode == 0
    assert_same_trajectory(out, uninterrupted)
