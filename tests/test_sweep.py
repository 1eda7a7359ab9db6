"""`ent sweep`: expansion and validation of sweep files, GPU placement of the local executor, and whole sweeps
on a local Ray cluster (4 tiny runs; a crash resumed exactly) and through submitit's local executor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT, ent_command, run_ent
from ent_harness.errors import EntError
from ent_harness.plugin_manager import get_registry
from ent_harness.sweep import (
    ExecutorContext,
    SweepTask,
    _open_lock,
    assess,
    load_sweep,
    planned_action,
    run_name,
    run_task,
    status_rows,
)

TINY = REPO_ROOT / "examples" / "sweeps" / "tiny.toml"
TINY_NAMES = ["tiny-qwen2-nl-s0", "tiny-qwen2-nl-s1", "tiny-qwen2-math-s0", "tiny-qwen2-math-s1"]
NOT_COMPARED = {"wall_time_s", "diagnostic_time_s", "gpu_memory_gb"}
ENV = {"OMP_NUM_THREADS": "1"}


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def single_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def metric_records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "diagnostics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if "event" not in r]


def assert_same_values(a, b, where: str = "") -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), where
        for key in a:
            assert_same_values(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_values(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert b == pytest.approx(a, rel=1e-9, abs=1e-12), where
    else:
        assert a == b, where


def assert_same_trajectory(a: Path, b: Path) -> None:
    ra, rb = metric_records(a), metric_records(b)
    assert [r["step"] for r in ra] == [r["step"] for r in rb]
    for x, y in zip(ra, rb):
        assert_same_values({k: v for k, v in x.items() if k not in NOT_COMPARED},
                           {k: v for k, v in y.items() if k not in NOT_COMPARED}, f"step {x['step']}")


# ---- the sweep file -------------------------------------------------------------------------------------


def test_tiny_sweep_expands_into_four_named_runs() -> None:
    sweep = load_sweep(TINY, get_registry())
    assert [run.name for run in sweep.runs] == TINY_NAMES
    assert all(run.settings["steps"] == 20 and run.settings["diag_every"] == 10 for run in sweep.runs)
    assert all(run.gpus == 0 for run in sweep.runs)  # the embedded tiny model runs on CPUs
    assert sweep.runs[2].config["companion"] == "math" and sweep.runs[2].config["seq_len"] == 128  # model defaults


def test_other_varied_settings_give_a_short_stable_suffix(tmp_path) -> None:
    path = write(tmp_path / "s.toml", '[grid]\nmodel = ["tiny-qwen2"]\nlr = [1e-4, 2e-4]\ncompanion_share = [0.25]\n'
                                      '[run]\nseed = 3\n')
    names = [run.name for run in load_sweep(path, get_registry()).runs]
    assert names == ["tiny-qwen2-nl-s3-lr0.0001-share0.25", "tiny-qwen2-nl-s3-lr0.0002-share0.25"]
    assert run_name({"model": "m", "seed": 1, "probes": "sets/my probes.jsonl"}, ["probes"]) == "m-nl-s1-probesmy_probes"


def test_relative_paths_are_relative_to_the_sweep_file(tmp_path) -> None:
    folder = tmp_path / "sweeps"
    folder.mkdir()
    path = write(folder / "s.toml", '[grid]\nmodel = ["tiny-qwen2"]\n[run]\nprobes = "my.jsonl"\n'
                                   'init_adapter = "../parent:10"\n')
    (run,) = load_sweep(path, get_registry()).runs
    assert run.settings["probes"] == str(folder / "my.jsonl")
    assert run.settings["init_adapter"] == f"{tmp_path / 'parent'}:10"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[grid]\nmodel = ["tiny-qwen2"]\n[run]\nstepz = 3\n', "unknown setting 'stepz' in [run]"),
        ('[grid]\nmodel = ["tiny-qwen2"]\n[gird]\nseed = [1]\n', "unknown table 'gird'"),
        ('[run]\nmodel = "tiny-qwen2"\n', "the [grid] table is empty"),
        ('[grid]\nmodel = ["tiny-qwen2"]\nseed = []\n', "[grid] seed is an empty list"),
        ('[grid]\nmodel = ["no-such-model"]\n', "Unknown model 'no-such-model'"),
        ('[grid]\ncompanion = ["nl", "mathh"]\n[run]\nmodel = "tiny-qwen2"\n', "Unknown companion 'mathh'"),
        ('[grid]\nmodel = ["tiny-qwen2"]\n[slurm]\npartiton = "gpu"\n', "unknown key 'partiton' in [slurm]"),
        ('[grid]\nmodel = ["tiny-qwen2"]\n[run]\nout = "x"\n', "unknown setting 'out' in [run]"),
        ('[grid]\nmodel = ["tiny-qwen2"]\nseed = [0]\n[run]\nseed = 1\n', "'seed' is both in [grid] and in [run]"),
        ('[grid]\nmodel = ["tiny-qwen2"]\n[run]\nsteps = 0\n', "Invalid steps 0"),
        ('[grid]\nseed = 1\n[run]\nmodel = "tiny-qwen2"\n', "[grid] seed must be a list"),
        ('[grid]\nmodel = ["tiny-qwen2"]\n[local]\ngpus = "two"\n',
         "[local] gpus must be a whole number, 0 or more, got 'two'"),
        ('[grid]\nmodel = ["tiny-qwen2"]\n[slurm]\ncpus_per_run = 8.5\n',
         "[slurm] cpus_per_run must be a whole number, 0 or more, got 8.5"),
        ('[grid]\nmodel = ["tiny-qwen2"]\n[slurm]\narray = "yes"\n', "[slurm] array must be true or false"),
        ('[grid]\nmodel = ["tiny-qwen2"]\n[slurm]\nsetup = "module load cuda"\n',
         "[slurm] setup must be a list of strings"),
        ('[grid]\nmodel = ["tiny-qwen2"]\n[ray]\ncpus_per_run = true\n', "[ray] cpus_per_run must be a number"),
        ('[grid]\nmodel = ["tiny-qwen2"]\n[ray]\nruntime_env = "x"\n', "[ray] runtime_env must be a table"),
    ],
)
def test_bad_sweep_files_are_refused_with_the_problem_named(tmp_path, text: str, message: str) -> None:
    with pytest.raises(EntError) as error:
        load_sweep(write(tmp_path / "bad.toml", text), get_registry())
    assert message in error.value.one_line()


def test_cli_errors_are_one_line_with_exit_2(tmp_path) -> None:
    bad = write(tmp_path / "bad.toml", '[grid]\nmodel = ["tiny-qwen2"]\n[run]\nstepz = 3\n')
    assert "unknown setting 'stepz'" in single_error_line(run_ent("sweep", str(bad), "--out", str(tmp_path / "o")))
    line = single_error_line(run_ent("sweep", str(TINY), "--ray-address", "auto", "--out", str(tmp_path / "o")))
    assert "--ray-address applies to the ray executor" in line
    assert "Unknown executor 'dask'" in single_error_line(run_ent("sweep", str(TINY), "--executor", "dask"))
    assert "holds no sweep.json" in single_error_line(run_ent("sweep", "status", str(tmp_path)))
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("executor", "module", "extra"), [("ray", "ray", "ray"), ("slurm", "submitit", "slurm")])
def test_a_missing_executor_package_names_the_extra(tmp_path, executor: str, module: str, extra: str) -> None:
    code = (f"import sys; sys.modules[{module!r}] = None; from ent_harness.cli import main; "
            f"main(['sweep', {str(TINY)!r}, '--executor', {executor!r}, '--out', {str(tmp_path / 'o')!r}])")
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    line = single_error_line(result)
    assert f"needs the '{module}' package" in line and f'pip install "ent-harness[{extra}]"' in line


def test_dry_run_lists_the_plan_and_writes_nothing(tmp_path) -> None:
    result = run_ent("sweep", str(TINY), "--out", str(tmp_path / "o"), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert [line.split()[:2] for line in result.stdout.splitlines()] == [["start", n] for n in TINY_NAMES]
    assert not (tmp_path / "o").exists()


def test_the_listing_imports_no_ray_submitit_or_torch() -> None:
    code = ("import sys; from ent_harness.cli import plugin_rows; rows = plugin_rows('executor'); "
            "print(sorted(r['name'] for r in rows), [m for m in ('ray', 'submitit', 'torch') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['local', 'ray', 'slurm'] []"


# ---- run directories and the lock ---------------------------------------------------------------------------


def test_a_run_started_with_other_settings_is_refused_and_steps_may_grow(tmp_path) -> None:
    sweep = load_sweep(TINY, get_registry())
    run = sweep.runs[0]
    run_dir = tmp_path / "runs" / run.name
    run_dir.mkdir(parents=True)
    assert assess(run, tmp_path) == "start"
    record = {"status": "finished", "config": {**run.config, "lr": 0.5, "inject_faults": ["crash@3"]}}
    (run_dir / "run.json").write_text(json.dumps(record))
    with pytest.raises(EntError, match="started with lr = 0.5"):
        assess(run, tmp_path)
    record["config"]["lr"] = run.config["lr"]
    (run_dir / "run.json").write_text(json.dumps(record))
    assert assess(run, tmp_path) == "skip"  # an injected fault does not make it another run
    assert planned_action(record, 40) == "extend"
    assert planned_action({**record, "status": "running"}, 20) == "resume"
    assert planned_action({**record, "status": "diverged"}, 20) == "skip"


def test_legacy_records_unreadable_records_and_resumes_with_the_sweeps_steps(tmp_path) -> None:
    from ent_harness.sweep import SweepTask, run_command

    sweep = load_sweep(TINY, get_registry())
    run = sweep.runs[0]
    run_dir = tmp_path / "runs" / run.name
    run_dir.mkdir(parents=True)
    # a run resumed under the behaviour it was recorded with (LEGACY_DEFAULTS) is still the sweep's run
    legacy = {**run.config, "speed": "plain", "compile_layers": "off", "dropout_seeding": "stream",
              "probe_batching": "in-order"}
    (run_dir / "run.json").write_text(json.dumps({"status": "finished", "config": legacy}))
    assert assess(run, tmp_path) == "skip"
    # a run.json that exists but cannot be read is an error, never a reason to start the run over
    (run_dir / "run.json").write_text("{not json")
    with pytest.raises(EntError, match="Cannot read"):
        assess(run, tmp_path)
    task = SweepTask(name=run.name, out=str(tmp_path), settings={}, steps=40)
    assert run_command(task, "resume")[-4:] == ["--resume", str(run_dir), "--steps", "40"]


def test_a_run_another_process_works_on_is_left_alone(tmp_path) -> None:
    task = SweepTask("r", str(tmp_path), {"model": "tiny-qwen2"}, 20)
    lock = _open_lock(tmp_path / "state" / "r.lock")
    try:
        assert run_task(task)["action"] == "busy"
    finally:
        os.close(lock)
    assert not (tmp_path / "runs" / "r").exists()


@pytest.mark.slow
def test_a_run_stopped_by_a_signal_is_not_retried(tmp_path) -> None:
    """Ctrl-C reaches the `ent run` processes as well as the sweep: an interrupted run is left for the next
    invocation, not resumed at once by --retries (which are for failures)."""
    task = SweepTask("r", str(tmp_path), {"model": "tiny-qwen2", "companion": "nl", "diag_every": 100,
                                          "tensorboard": False}, 400, retries=2, env=ENV)
    results: list[dict] = []
    worker = threading.Thread(target=lambda: results.append(run_task(task)))
    worker.start()
    state, record_path = tmp_path / "state" / "r.json", task.run_dir / "run.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until the run trains
        record = json.loads(record_path.read_text()) if record_path.exists() else {}
        if record.get("status") == "running" and record.get("step", 0) > 0 and state.exists():
            break
        time.sleep(0.2)
    else:
        pytest.fail("the run did not start training")
    os.kill(json.loads(state.read_text())["attempts"][0]["pid"], signal.SIGTERM)
    worker.join(timeout=120)
    assert not worker.is_alive()
    attempts = json.loads(state.read_text())["attempts"]
    assert len(attempts) == 1 and attempts[0]["status"] == "interrupted" and attempts[0]["exit_code"] != 0
    assert json.loads(record_path.read_text())["status"] == "interrupted"
    assert results[0]["exit_code"] != 0


# ---- GPU placement of the local executor (fake GPUs, a stub runner) --------------------------------------------


def test_local_executor_spreads_runs_over_gpu_slots_two_at_a_time(tmp_path, monkeypatch) -> None:
    from ent_plugins.executors.local import execute, gpu_slots

    monkeypatch.delenv("ENT_SWEEP_GPUS", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert gpu_slots() == ["2", "3"] and gpu_slots(1) == ["2"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setenv("ENT_SWEEP_GPUS", "3")
    assert gpu_slots() == ["0", "1", "2"] and gpu_slots(0) == []

    lock = threading.Lock()
    running: dict[str, str] = {}
    log: list[tuple[str, str, int]] = []

    def runner(task: SweepTask, gpu: str | None, executor: str) -> dict:
        with lock:
            assert gpu not in running.values(), "two runs on one GPU"
            running[task.name] = gpu
            log.append((task.name, gpu, len(running)))
        time.sleep(0.3)
        with lock:
            del running[task.name]
        return {"name": task.name, "status": "finished", "gpu": gpu}

    tasks = [SweepTask(f"run{i}", str(tmp_path), {}, 1) for i in range(4)]
    results = execute(tasks, ExecutorContext(tmp_path, {"gpus": 2}, runner=runner, echo=lambda line: None))
    assert sorted(r["name"] for r in results) == [t.name for t in tasks]
    assert [entry[1] for entry in log[:2]] == ["0", "1"]  # the first two runs start on GPU 0 and GPU 1
    assert max(entry[2] for entry in log) == 2  # two at a time
    assert {entry[1] for entry in log} == {"0", "1"}
    sequential: list[str | None] = []
    execute(tasks[:2], ExecutorContext(tmp_path, {"gpus": 0}, echo=lambda line: None,
                                       runner=lambda task, gpu, executor: sequential.append(gpu) or {"name": task.name}))
    assert sequential == [None, None]


@pytest.mark.slow
def test_local_sweep_pins_each_run_to_its_gpu_slot(tmp_path) -> None:
    sweep = write(tmp_path / "two.toml", '[grid]\nmodel = ["tiny-qwen2"]\nseed = [7, 8]\n[run]\nsteps = 2\ndiag_every = 2\n')
    out = tmp_path / "out"
    result = run_ent("sweep", str(sweep), "--gpus", "2", "--out", str(out), env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {row["name"]: row for row in json.loads(run_ent("sweep", "status", str(out), "--json").stdout)}
    assert {row["status"] for row in rows.values()} == {"finished"}
    assert sorted(row["gpu"] for row in rows.values()) == ["0", "1"]
    states = [json.loads((out / "state" / f"{name}.json").read_text()) for name in rows]
    assert all(s["attempts"][0]["executor"] == "local" and s["attempts"][0]["exit_code"] == 0 for s in states)


# ---- Ray --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_sweep(tmp_path_factory) -> tuple[Path, float]:
    pytest.importorskip("ray")
    out = tmp_path_factory.mktemp("ray") / "tiny"
    start = time.perf_counter()
    result = run_ent("sweep", str(TINY), "--executor", "ray", "--out", str(out), env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, time.perf_counter() - start


@pytest.mark.slow
def test_ray_sweep_runs_four_runs_and_a_second_invocation_skips_them(ray_sweep) -> None:
    out, first = ray_sweep
    manifest = json.loads((out / "sweep.json").read_text())
    assert [run["name"] for run in manifest["runs"]] == TINY_NAMES and manifest["executor"] == "ray"
    for name in TINY_NAMES:
        record = json.loads((out / "runs" / name / "run.json").read_text())
        assert record["status"] == "finished" and record["step"] == 20
        assert [r["step"] for r in metric_records(out / "runs" / name)] == [0, 10, 20]
    before = {name: ((out / "runs" / name / "run.json").read_text(), (out / "runs" / name / "diagnostics.jsonl").read_text(),
                     (out / "state" / f"{name}.json").read_text()) for name in TINY_NAMES}
    start = time.perf_counter()
    again = run_ent("sweep", str(TINY), "--executor", "ray", "--out", str(out), env=ENV)
    second = time.perf_counter() - start
    assert again.returncode == 0, again.stderr[-3000:]
    assert "nothing to do" in again.stderr and "ray: starting" not in again.stderr
    assert second < 60, f"the second invocation took {second:.1f} s"
    for name in TINY_NAMES:
        after = ((out / "runs" / name / "run.json").read_text(), (out / "runs" / name / "diagnostics.jsonl").read_text(),
                 (out / "state" / f"{name}.json").read_text())
        assert after == before[name]
        assert json.loads(after[0])["started"] == json.loads(before[name][0])["started"]
    print(f"\nray sweep: first invocation {first:.1f} s, second {second:.2f} s")
    rows = json.loads(run_ent("sweep", "status", str(out), "--json").stdout)
    assert [(r["name"], r["status"], r["step"], r["steps"], r["executor"]) for r in rows] == [
        (name, "finished", 20, 20, "ray") for name in TINY_NAMES]
    assert all(isinstance(r["ei"], float) and not r["active"] for r in rows)
    table = run_ent("sweep", "status", str(out))
    assert table.returncode == 0 and "tiny-qwen2-math-s1" in table.stdout and "20/20" in table.stdout


@pytest.mark.slow
def test_a_run_sigkilled_on_ray_resumes_exactly_on_the_next_invocation(tmp_path, ray_sweep) -> None:
    reference = ray_sweep[0] / "runs" / "tiny-qwen2-nl-s0"
    text = TINY.read_text().replace('companion = ["nl", "math"]', 'companion = ["nl"]').replace("seed = [0, 1]", "seed = [0]")
    crashing = write(tmp_path / "crash.toml", text + 'inject_faults = ["crash@15"]\n')  # SIGKILL at step 15
    out = tmp_path / "out"
    first = run_ent("sweep", str(crashing), "--executor", "ray", "--out", str(out), env=ENV)
    assert first.returncode == 1, first.stderr[-3000:]
    assert "exit code -9" in first.stderr
    run_dir = out / "runs" / "tiny-qwen2-nl-s0"
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"  # killed mid-run
    (row,) = json.loads(run_ent("sweep", "status", str(out), "--json").stdout)
    assert row["status"] == "running" and not row["active"] and row["step"] == 10
    second = run_ent("sweep", str(write(tmp_path / "same.toml", text)), "--executor", "ray", "--out", str(out), env=ENV)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "(1 to resume)" in second.stderr
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "finished" and record["faults_fired"] == []
    state = json.loads((out / "state" / "tiny-qwen2-nl-s0.json").read_text())
    assert [(a["action"], a["exit_code"]) for a in state["attempts"]] == [("start", -9), ("resume", 0)]
    assert_same_trajectory(run_dir, reference)


@pytest.mark.slow
def test_a_killed_ray_worker_leaves_a_run_the_next_invocation_resumes_exactly(tmp_path, ray_sweep) -> None:
    from ent_harness.sweep import lock_is_held

    reference = ray_sweep[0] / "runs" / "tiny-qwen2-nl-s0"
    text = TINY.read_text().replace('companion = ["nl", "math"]', 'companion = ["nl"]').replace("seed = [0, 1]", "seed = [0]")
    sweep = write(tmp_path / "one.toml", text)
    out = tmp_path / "out"
    run_dir, state = out / "runs" / "tiny-qwen2-nl-s0", out / "state" / "tiny-qwen2-nl-s0.json"
    driver = subprocess.Popen([*ent_command(), "sweep", str(sweep), "--executor", "ray", "--out", str(out)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ, **ENV})
    deadline = time.time() + 300
    while not (run_dir / "checkpoints" / "step-10").is_dir():
        assert driver.poll() is None, driver.stderr.read()
        assert time.time() < deadline
        time.sleep(0.05)
    worker = json.loads(state.read_text())["attempts"][0]["worker_pid"]
    os.kill(worker, signal.SIGKILL)  # the Ray worker running the task dies; its `ent run` gets SIGTERM
    assert driver.wait(timeout=120) == 1
    while lock_is_held(out / "state" / "tiny-qwen2-nl-s0.lock"):  # the run process saves and stops
        assert time.time() < deadline
        time.sleep(0.1)
    assert json.loads((run_dir / "run.json").read_text())["status"] in ("interrupted", "running")
    again = run_ent("sweep", str(sweep), "--executor", "ray", "--out", str(out), env=ENV)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "(1 to resume)" in again.stderr
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"
    assert_same_trajectory(run_dir, reference)


# ---- SLURM through submitit's local executor ---------------------------------------------------------------


@pytest.mark.slow
def test_slurm_executor_through_submitit_local_finishes_then_skips(tmp_path) -> None:
    pytest.importorskip("submitit")
    sweep = write(tmp_path / "slurm.toml", '[grid]\nmodel = ["tiny-qwen2"]\nseed = [5]\n[run]\nsteps = 4\ndiag_every = 2\n'
                                           '[slurm]\npartition = "gpu"\ntime = "00:20:00"\narray = true\n')
    out = tmp_path / "out"
    result = run_ent("sweep", str(sweep), "--executor", "slurm", "--slurm-cluster", "local", "--out", str(out), env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "submitit (local)" in result.stderr
    run_dir = out / "runs" / "tiny-qwen2-nl-s5"
    record = json.loads(run_dir.joinpath("run.json").read_text())
    assert record["status"] == "finished" and record["step"] == 4
    state = json.loads((out / "state" / "tiny-qwen2-nl-s5.json").read_text())
    assert [a["executor"] for a in state["attempts"]] == ["slurm"]
    assert any((out / "slurm").iterdir())  # submitit's job folders (logs, pickles)
    again = run_ent("sweep", str(sweep), "--executor", "slurm", "--slurm-cluster", "local", "--out", str(out), env=ENV)
    assert again.returncode == 0 and "nothing to do" in again.stderr
    assert json.loads(run_dir.joinpath("run.json").read_text())["started"] == record["started"]
    assert [r["status"] for r in status_rows(out)] == ["finished"]


def test_slurm_time_formats() -> None:
    pytest.importorskip("submitit")
    from ent_plugins.executors.slurm_executor import minutes

    assert [minutes(v) for v in (90, "90", "10:30", "04:00:00", "1-00", "2-12:30:00")] == [90, 90, 11, 240, 1440, 3630]
    with pytest.raises(EntError):
        minutes("soon")


def test_slurm_settings_become_sbatch_options(tmp_path, monkeypatch) -> None:
    submitit = pytest.importorskip("submitit")
    from ent_plugins.executors.slurm_executor import _parameters

    fake = tmp_path / "bin"
    fake.mkdir()
    write(fake / "srun", "#!/bin/sh\nexit 0\n").chmod(0o755)  # submitit only checks that srun exists
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    executor = submitit.AutoExecutor(folder=tmp_path / "%j", cluster="slurm")
    settings = {"partition": "gpu", "time": "04:00:00", "account": "acct", "qos": "high", "mem_gb": 64,
                "array_parallelism": 4, "setup": ["module load cuda"], "additional": {"exclusive": True}}
    executor.update_parameters(**_parameters(settings, 1, "paper"))
    script = executor._executor._make_submission_file_text("python -m job", "uid")
    for option in ("--partition=gpu", "--time=240", "--gpus-per-node=1", "--cpus-per-task=8", "--mem=64GB",
                   "--account=acct", "--qos=high", "--exclusive", "--job-name=ent-paper"):
        assert f"#SBATCH {option}" in script, option
    assert "module load cuda" in script
    assert _parameters({}, 0, "tiny")["gpus_per_node"] == 0 and _parameters({}, 0, "tiny")["cpus_per_task"] == 1


@pytest.mark.parametrize("array", [True, False])
def test_slurm_executor_runs_each_task_once_as_a_job_or_an_array(tmp_path, array: bool) -> None:
    pytest.importorskip("submitit")
    from ent_plugins.executors.slurm_executor import execute

    def runner(task: SweepTask, gpu: str | None, executor: str) -> dict:
        return {"name": task.name, "status": "finished", "executor": executor}

    tasks = [SweepTask(f"run{i}", str(tmp_path), {}, 1) for i in range(3)]
    context = ExecutorContext(tmp_path, {"cluster": "debug", "array": array, "partition": "gpu"}, runner=runner,
                              echo=lambda line: None)
    results = execute(tasks, context)
    assert sorted((r["name"], r["executor"]) for r in results) == [(t.name, "slurm") for t in tasks]
    with pytest.raises(EntError, match="submitit"):
        execute(tasks, ExecutorContext(tmp_path, {"cluster": "nowhere"}, runner=runner, echo=lambda line: None))



def test_sweep_out_in_the_file_is_relative_to_the_file_and_big_runs_are_refused_up_front(tmp_path) -> None:
    from types import SimpleNamespace

    from ent_harness.sweep import SweepTask, resolve_out
    from ent_plugins.executors import local

    (tmp_path / "sub").mkdir()
    text = TINY.read_text().replace("[sweep]\n", '[sweep]\nout = "../folder"\n', 1)
    sweep = load_sweep(write(tmp_path / "sub" / "s.toml", text), get_registry())
    assert resolve_out(sweep, None) == (tmp_path / "folder").resolve()
    assert resolve_out(sweep, str(tmp_path / "x")) == (tmp_path / "x").resolve()
    big = SweepTask(name="big", out=str(tmp_path), settings={}, steps=20, gpus=4)
    with pytest.raises(EntError, match="asks for 4 GPUs"):
        local.execute([big], SimpleNamespace(settings={"gpus": 2}))
