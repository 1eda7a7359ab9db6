"""`ent sweep`: a grid of runs, each exactly an ``ent run``, carried out by an executor plugin.

The sweep file (TOML, docs/sweeps.md) has a ``[grid]`` table of lists (every combination is one run), a
``[run]`` table of settings shared by every run (keys as in ``ent run --config``), an optional ``[sweep]``
table (``name``, ``out``, ``executor``, ``retries``) and one optional table per executor (``[local]``,
``[ray]``, ``[slurm]``) with that executor's settings.

The sweep folder (``--out``), on storage every worker sees:

- ``sweep.json``: the manifest: the file, the grid, the expanded runs with their settings (written atomically).
- ``runs/NAME/``: each run's directory, exactly what ``ent run --out`` writes (``ent report OUT/runs/*``).
- ``configs/NAME.toml``: the run's settings as ``ent run --config`` reads them.
- ``state/NAME.json``: the sweep's account of the run: every attempt with its host, pid, GPU and exit code.
- ``state/NAME.lock``: held (``flock``) while a process works on the run; another worker skips the run.
- ``logs/NAME.log``: the output of every ``ent run`` attempt.

Every run is one subprocess ``python -m ent_harness.sweep_child run ...``, which is ``ent run`` (the child
module only asks the kernel to stop it with SIGTERM if the worker that started it dies, so the protocol
checkpoints and stops it as interrupted). A finished run is skipped; a run with a run.json that did not
finish (running, interrupted, failed) is continued with ``ent run --resume``; a missing one is started.
This module imports nothing heavy: the driver only reads TOML and JSON.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import EntError
from .rundir import DIAGNOSTICS_FILE, RUN_FILE, atomic_write_text, write_json
from .specs import SETTING_KINDS, setting_matches

MANIFEST_FILE = "sweep.json"
RUNS_DIR, CONFIGS_DIR, STATE_DIR, LOGS_DIR = "runs", "configs", "state", "logs"
SWEEP_KEYS = ("name", "out", "executor", "retries")
LIST_FIELDS = ("diag_windows", "inject_faults", "lora_targets")
# set by the sweep itself (directories) or not a setting
NOT_SWEEPABLE = ("out", "extra")
# may differ between the sweep file and a run directory without making them different runs
NOT_COMPARED = ("out", "extra", "inject_faults", "steps")
# settings added (or whose default changed) after runs were recorded: a legacy run.json gets its old behaviour
# on resume (LEGACY_DEFAULTS, or its recorded value), so they are compared only when the sweep file sets them
LATER_SETTINGS = ("speed", "compile_layers", "dropout_seeding", "probe_batching", "probe_batch_size")
DONE_STATUSES = ("finished", "diverged")  # a diverged run would diverge again: it is a result, not a failure
BASE_NAME_KEYS = ("model", "companion", "seed")
ABBREVIATIONS = {
    "companion_share": "share", "batch_size": "bs", "seq_len": "len", "grad_accum": "accum", "lora_r": "r",
    "lora_alpha": "alpha", "lora_dropout": "dropout", "weight_decay": "wd", "warmup_steps": "warmup",
    "diag_every": "every", "quantize": "q", "random_weights": "twin", "optimizer": "opt",
}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ---- the sweep file ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepRun:
    """One expanded run: its directory name, the settings the sweep gives it, its resolved config record."""

    name: str
    settings: dict[str, Any]
    config: dict[str, Any]
    gpus: int

    def manifest_entry(self) -> dict[str, Any]:
        resolved = {key: self.config.get(key) for key in ("model", "companion", "seed", "steps")}
        return {"name": self.name, "dir": f"{RUNS_DIR}/{self.name}", **resolved, "settings": _plain(self.settings),
                "gpus": self.gpus}


@dataclass(frozen=True)
class Sweep:
    path: Path
    name: str
    out: str | None
    executor: str | None
    retries: int
    grid: dict[str, list[Any]]
    fixed: dict[str, Any]
    executor_settings: dict[str, dict[str, Any]]
    runs: list[SweepRun]


def _plain(settings: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}


def _field_names() -> frozenset[str]:
    from .config import FIELD_NAMES

    return FIELD_NAMES


def _setting_value(path: Path, table: str, key: str, value: Any) -> Any:
    if key in LIST_FIELDS:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise EntError(f"{path}: [{table}] {key} must be a list of strings", f'write e.g. {key} = ["..."]')
        return tuple(value)
    if isinstance(value, (dict, list)):
        raise EntError(f"{path}: [{table}] {key} must be a single value, got {type(value).__name__}",
                       "put the values to vary in [grid]" if table == "run" else None)
    return value


def _settings_table(path: Path, table: str, values: Any, known: frozenset[str]) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise EntError(f"{path}: [{table}] must be a table")
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in known or name in NOT_SWEEPABLE:
            hint = ("the sweep names each run's directory itself; set the sweep folder with [sweep] out or --out"
                    if name == "out" else f"known settings: {', '.join(sorted(known - set(NOT_SWEEPABLE)))}")
            raise EntError(f"{path}: unknown setting '{key}' in [{table}]", hint)
        out[name] = value
    return out


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return format(value, "g")
    if isinstance(value, (list, tuple)):
        return "+".join(_format_value(v) for v in value)
    text = str(value)
    if "/" in text or text.endswith(".jsonl"):
        text = Path(text).stem
    return text


def _clean(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("._") or "x"


def run_name(settings: Mapping[str, Any], varied: list[str]) -> str:
    """``MODEL-COMPANION-sSEED`` (as ``ent run`` names its default directory), then ``-KEYVALUE`` for every
    other setting the grid varies, in the grid's order (``-lr0.0002-share0.25``). Stable: it depends only on
    the run's settings and the grid's keys."""
    base = f"{settings['model']}-{settings.get('companion', 'nl')}-s{settings.get('seed', 0)}"
    parts = [_clean(base)]
    for key in varied:
        if key in BASE_NAME_KEYS:
            continue
        parts.append(_clean(f"{ABBREVIATIONS.get(key, key.replace('_', ''))}{_format_value(settings[key])}"))
    name = "-".join(parts)
    if len(name) > 120:
        digest = hashlib.sha1(json.dumps(_plain(settings), sort_keys=True).encode()).hexdigest()[:8]
        name = f"{name[:100]}-{digest}"
    return name


def _absolute_paths(settings: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative paths in a sweep file (a probes file, ``model_path``, ``init_adapter``) are relative to the
    file, made absolute so that every worker, whatever its working directory, finds them."""
    fixed = dict(settings)
    probes = fixed.get("probes")
    if isinstance(probes, str) and (probes.endswith(".jsonl") or (base / probes).is_file()):
        fixed["probes"] = str((base / probes).resolve())
    if isinstance(fixed.get("model_path"), str):
        fixed["model_path"] = str((base / fixed["model_path"]).resolve())
    adapter = fixed.get("init_adapter")
    if isinstance(adapter, str):
        run_dir, sep, step = adapter.rpartition(":")
        if not (sep and step.isdigit()):
            run_dir, sep, step = adapter, "", ""
        fixed["init_adapter"] = str((base / run_dir).resolve()) + sep + step
    return fixed


def load_sweep(path: str | Path, registry: Any) -> Sweep:
    """Read, validate and expand a sweep file; every run's settings are resolved (and checked) up front."""
    from .config import read_toml, resolve_run_config

    path = Path(path)
    data = read_toml(path, "Sweep file", "check the path (examples/sweeps/tiny.toml is one)")
    executors = set(registry.names("executor"))
    known_tables = {"sweep", "grid", "run", "settings", *executors}
    for key, value in data.items():
        if key not in known_tables or not isinstance(value, dict):
            raise EntError(f"{path}: unknown {'table' if isinstance(value, dict) else 'key'} '{key}'",
                           f"a sweep file has the tables {', '.join(sorted(known_tables))}; "
                           "run settings go under [run], the values to vary under [grid]")
    if "run" in data and "settings" in data:
        raise EntError(f"{path}: both [run] and [settings]", "they are the same table; keep one")
    meta = data.get("sweep", {})
    for key in meta:
        if key not in SWEEP_KEYS:
            raise EntError(f"{path}: unknown key '{key}' in [sweep]", f"known keys: {', '.join(SWEEP_KEYS)}")
    retries = meta.get("retries", 0)
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise EntError(f"{path}: [sweep] retries must be a non-negative integer")
    known = _field_names()
    fixed_table = "settings" if "settings" in data else "run"
    fixed = {k: _setting_value(path, fixed_table, k, v)
             for k, v in _settings_table(path, fixed_table, data.get(fixed_table, {}), known).items()}
    grid_raw = _settings_table(path, "grid", data.get("grid", {}), known)
    if not grid_raw:
        raise EntError(f"{path}: the [grid] table is empty",
                       "list at least one setting to vary, e.g. seed = [0, 1] (one value is a one-run sweep)")
    grid: dict[str, list[Any]] = {}
    for key, values in grid_raw.items():
        if key in fixed:
            raise EntError(f"{path}: '{key}' is both in [grid] and in [{fixed_table}]", "keep it in one of them")
        if not isinstance(values, list):
            raise EntError(f"{path}: [grid] {key} must be a list of values", f"write {key} = [{values!r}]")
        if not values:
            raise EntError(f"{path}: [grid] {key} is an empty list", "give at least one value")
        grid[key] = [_setting_value(path, "grid", key, v) for v in values]
        if len({json.dumps(_plain({"v": v})) for v in grid[key]}) != len(values):
            raise EntError(f"{path}: [grid] {key} lists a value twice")
    if "model" not in grid and "model" not in fixed:
        raise EntError(f"{path}: no model", "add model = \"NAME\" to [run] or model = [...] to [grid]")
    for table, values in data.items():
        if table in executors:
            spec = registry.get("executor", table)
            kinds = dict(spec.setting_kinds)
            for key, value in values.items():
                if key not in spec.settings:
                    raise EntError(f"{path}: unknown key '{key}' in [{table}]",
                                   f"the {table} executor knows: {', '.join(spec.settings) or 'no settings'}")
                if key in kinds and not setting_matches(kinds[key], value):
                    raise EntError(f"{path}: [{table}] {key} must be {SETTING_KINDS[kinds[key]]}, got {value!r}")

    varied = list(grid)
    runs: list[SweepRun] = []
    for combination in itertools.product(*grid.values()):
        settings = _absolute_paths({**dict(zip(varied, combination)), **fixed}, path.parent)
        model_spec = registry.get("model", settings["model"])
        for role in ("companion", "primary"):
            if role in settings:
                registry.get("companion", settings[role])
        probes = settings.get("probes")
        if probes and not (str(probes).endswith(".jsonl") or Path(str(probes)).is_file()):
            registry.get("probe_set", probes)
        name = run_name(settings, varied)
        try:
            config = resolve_run_config(dict(model_spec.run_defaults), {}, {**settings, "out": None})
        except EntError as exc:
            raise EntError(f"{path}: run {name}: {exc.message}", exc.fix) from None
        cpu_only = config.device == "cpu" or (getattr(model_spec, "embedded", False) and config.device != "cuda")
        gpus = 0 if cpu_only else int(getattr(config, "gpus", 1) or 1)
        runs.append(SweepRun(name, settings, config.to_record(), gpus))
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise EntError(f"{path}: two runs would share the directory '{duplicate}'",
                       "grid values that differ only in characters a directory name cannot hold; change one")
    executor_settings = {t: dict(v) for t, v in data.items() if t in executors}
    return Sweep(path, str(meta.get("name") or path.stem), meta.get("out"), meta.get("executor"), retries, grid,
                 fixed, executor_settings, runs)


# ---- run directories ----------------------------------------------------------------------------------


def read_record(run_dir: Path) -> dict[str, Any] | None:
    """The run's run.json, None when there is none; one that exists but cannot be read is an error (never a
    reason to start the run again over its checkpoints)."""
    path = run_dir / RUN_FILE
    if not path.is_file():
        return None
    for attempt in range(3):
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            if attempt == 2:
                raise EntError(f"Cannot read '{path}' ({type(exc).__name__})",
                               "check the file system; the run directory was left as it is") from None
            time.sleep(0.5)
    return None


def settings_mismatch(recorded: Mapping[str, Any], planned: Mapping[str, Any]) -> str | None:
    """The first setting a run directory was started with that differs from the sweep's, or None."""
    for key, value in planned.items():
        if key in NOT_COMPARED or key not in recorded:
            continue
        if recorded[key] != value:
            return f"{key} = {recorded[key]!r} (the sweep now asks {value!r})"
    return None


def planned_action(record: dict[str, Any] | None, planned_steps: int) -> str:
    """What a run needs: ``start``, ``resume``, ``extend`` (finished, more steps asked) or ``skip``."""
    if record is None:
        return "start"
    status = record.get("status")
    recorded_steps = int((record.get("config") or {}).get("steps", planned_steps))
    if status in DONE_STATUSES:
        return "extend" if status == "finished" and planned_steps > recorded_steps else "skip"
    return "resume"


def assess(run: SweepRun, out: Path) -> str:
    """The action a run needs; refuses a run directory started with other settings."""
    record = read_record(out / RUNS_DIR / run.name)
    if record is not None:
        recorded = record.get("config") or {}
        planned = {k: v for k, v in run.config.items() if k not in LATER_SETTINGS or k in run.settings}
        mismatch = settings_mismatch(recorded, planned)
        if mismatch is None and int(recorded.get("steps", run.config["steps"])) > run.config["steps"]:
            mismatch = f"steps = {recorded.get('steps')} (the sweep now asks {run.config['steps']})"
        if mismatch:
            raise EntError(f"Run '{out / RUNS_DIR / run.name}' was started with {mismatch}",
                           "give the sweep another --out, or remove that run directory to redo it")
    return planned_action(record, run.config["steps"])


# ---- one run, on a worker -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepTask:
    """What a worker needs to carry out one run (picklable; paths absolute)."""

    name: str
    out: str
    settings: dict[str, Any]
    steps: int
    gpus: int = 0
    retries: int = 0
    env: dict[str, str] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / RUNS_DIR / self.name


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} to TOML")


def settings_toml(settings: Mapping[str, Any]) -> str:
    lines = ["# written by `ent sweep`: this run's settings (`ent run --config` reads them)", "[run]"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in settings.items() if value is not None]
    return "\n".join(lines) + "\n"


def run_command(task: SweepTask, action: str) -> list[str]:
    """The ``ent run`` command line of one attempt."""
    base = [sys.executable, "-m", "ent_harness.sweep_child", "run"]
    if action == "start":
        config = Path(task.out) / CONFIGS_DIR / f"{task.name}.toml"
        return [*base, "--config", str(config), "--out", str(task.run_dir), "--force"]
    # the sweep's steps also on a plain resume: a run interrupted before the file asked for more steps
    return [*base, "--resume", str(task.run_dir), "--steps", str(task.steps)]


def _open_lock(path: Path) -> int | None:
    """An fd holding an exclusive flock on ``path``, or None when another process holds it.

    On a filesystem without flock support (Lustre mounted without ``-o flock``) the fd comes back unlocked:
    the run goes ahead as it would without the lock, rather than being reported busy forever.
    """
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError:
        pass  # no lock support here
    return fd


def lock_is_held(path: Path) -> bool:
    """Whether some process works on the run now (its lock file is locked)."""
    import fcntl

    if not path.is_file():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False  # no lock support: nothing to tell
    finally:
        os.close(fd)
    return False


def _read_state(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {"attempts": []}


def _result(task: SweepTask, action: str, **extra: Any) -> dict[str, Any]:
    record = read_record(task.run_dir) or {}
    return {"name": task.name, "action": action, "status": record.get("status", "pending"),
            "step": record.get("step"), **extra}


def run_task(task: SweepTask, gpu: str | None = None, executor: str = "local") -> dict[str, Any]:
    """Carry out one run where this function is called (a thread, a Ray task, a SLURM job).

    Skips a finished run, resumes an unfinished one, starts a missing one; ``gpu`` (ids as in
    ``CUDA_VISIBLE_DEVICES``) pins the ``ent run`` subprocess to those GPUs. Holds the run's lock while it
    works (the subprocess inherits it, so the lock lasts as long as either lives). Returns a result dict.
    """
    out = Path(task.out)
    state_path = out / STATE_DIR / f"{task.name}.json"
    lock = _open_lock(out / STATE_DIR / f"{task.name}.lock")
    if lock is None:
        return _result(task, "busy", detail="another process works on this run")
    try:
        state = _read_state(state_path)
        state.update({"name": task.name, "run_dir": str(task.run_dir)})
        started = time.monotonic()
        attempts_left = 1 + task.retries
        action = "skip"
        exit_code: int | None = None
        while attempts_left:
            action = planned_action(read_record(task.run_dir), task.steps)
            if action == "skip":
                break
            attempts_left -= 1
            if action == "start":
                atomic_write_text(out / CONFIGS_DIR / f"{task.name}.toml", settings_toml(task.settings))
            command = run_command(task, action)
            env = {**os.environ, **task.env, "ENT_SWEEP_PARENT_PID": str(os.getpid())}
            if gpu is not None:
                env["CUDA_VISIBLE_DEVICES"] = gpu
            attempt = {"action": action, "executor": executor, "host": socket.gethostname(),
                       "worker_pid": os.getpid(), "gpu": env.get("CUDA_VISIBLE_DEVICES"),
                       "command": command, "started": _now()}
            log_path = out / LOGS_DIR / f"{task.name}.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with log_path.open("a", encoding="utf-8") as log:
                log.write(f"\n=== {attempt['started']} {action} on {attempt['host']} ({executor}, "
                          f"CUDA_VISIBLE_DEVICES={attempt['gpu']}) ===\n$ {' '.join(command)}\n")
                log.flush()
                process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                           stdin=subprocess.DEVNULL, pass_fds=(lock,))
                attempt["pid"] = process.pid
                state.setdefault("attempts", []).append(attempt)
                state.update({"executor": executor, "host": attempt["host"], "gpu": attempt["gpu"]})
                write_json(state_path, state)
                try:
                    exit_code = process.wait()
                except BaseException:
                    process.terminate()  # Ctrl-C or a cancelled task: let the protocol checkpoint and stop
                    exit_code = process.wait()
                    raise
                finally:
                    attempt.update({"ended": _now(), "exit_code": exit_code,
                                    "status": (read_record(task.run_dir) or {}).get("status")})
                    write_json(state_path, state)
            if exit_code == 0 or attempt["status"] == "interrupted":
                break  # an interrupted run was asked to stop (Ctrl-C, SIGTERM, pre-emption): not a failure to retry
        return _result(task, action, exit_code=exit_code, gpu=state.get("gpu"), host=state.get("host"),
                       seconds=round(time.monotonic() - started, 1), log=str(out / LOGS_DIR / f"{task.name}.log"))
    finally:
        os.close(lock)


def failed_result(task: SweepTask, error: BaseException | str) -> dict[str, Any]:
    """The result of a task whose worker failed (the run directory stays resumable)."""
    text = " ".join(str(error).split())[:300] or type(error).__name__
    return _result(task, "error", error=text)


# ---- executors ----------------------------------------------------------------------------------------


@dataclass
class ExecutorContext:
    """What an executor gets besides the tasks.

    ``settings``: its table from the sweep file, overridden by command-line flags. ``runner(task, gpu)``
    carries out one task (:func:`run_task` unless a test swaps it; it must stay picklable for executors
    that ship it elsewhere). ``echo`` prints one progress line. ``wait``: False asks an executor that can
    (slurm) to submit and return.
    """

    out: Path
    settings: dict[str, Any]
    runner: Callable[..., dict[str, Any]] = run_task
    echo: Callable[[str], None] = print
    wait: bool = True
    name: str = "sweep"


def describe(result: Mapping[str, Any]) -> str:
    where = ", ".join(f"{k} {result[k]}" for k in ("host", "gpu") if result.get(k))
    parts = [f"{result['name']}: {result.get('status')}"]
    if result.get("action") not in (None, "skip"):
        parts.append(f"({result['action']}{', ' + str(result['seconds']) + ' s' if result.get('seconds') else ''})")
    if where:
        parts.append(f"[{where}]")
    if result.get("error"):
        parts.append(f"error: {result['error']}")
    elif result.get("exit_code") not in (None, 0):
        parts.append(f"exit code {result['exit_code']}, log {result.get('log')}")
    return " ".join(parts)


def check_requirements(spec: Any) -> None:
    for module in spec.requires:
        try:
            missing = importlib.util.find_spec(module) is None
        except (ImportError, ValueError):
            missing = True
        if missing:
            install = f'pip install "ent-harness[{spec.extra}]"' if spec.extra else f"pip install {module}"
            raise EntError(f"The {spec.name} executor needs the '{module}' package, which is not installed",
                           f"install it with: {install}")


def resolve_out(sweep: Sweep, out: str | None) -> Path:
    """``--out`` (relative to the current directory), else ``[sweep] out`` (relative to the sweep file, like
    every other path in it), else ``sweeps/NAME``."""
    if out:
        return Path(out).expanduser().resolve()
    if sweep.out:
        return (sweep.path.parent / Path(sweep.out).expanduser()).resolve()
    return (Path("sweeps") / _clean(sweep.name)).resolve()


def write_manifest(sweep: Sweep, out: Path, executor: str, actions: Mapping[str, str]) -> None:
    previous = {}
    if (out / MANIFEST_FILE).is_file():
        try:
            previous = json.loads((out / MANIFEST_FILE).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            previous = {}
    write_json(out / MANIFEST_FILE, {
        "sweep": sweep.name,
        "file": str(sweep.path.resolve()),
        "created": previous.get("created", _now()),
        "updated": _now(),
        "executor": executor,
        "grid": dict(sweep.grid),
        "fixed": _plain(sweep.fixed),
        "executor_settings": sweep.executor_settings,
        "runs": [{**run.manifest_entry(), "action": actions.get(run.name)} for run in sweep.runs],
    })


def plan_sweep(sweep: Sweep, out: Path) -> dict[str, str]:
    return {run.name: assess(run, out) for run in sweep.runs}


def execute_sweep(sweep: Sweep, out: Path, registry: Any, executor: str, overrides: Mapping[str, Any],
                  retries: int, actions: Mapping[str, str], echo: Callable[[str], None],
                  wait: bool = True) -> list[dict[str, Any]]:
    """Hand the runs that need work to the executor; returns its results."""
    from .specs import resolve_target

    spec = registry.get("executor", executor)
    settings = {**sweep.executor_settings.get(executor, {}), **{k: v for k, v in overrides.items() if v is not None}}
    tasks = [SweepTask(run.name, str(out), dict(run.settings), int(run.config["steps"]), run.gpus, retries)
             for run in sweep.runs if actions[run.name] != "skip"]
    context = ExecutorContext(out, settings, run_task, echo, wait, sweep.name)
    return list(resolve_target(spec.execute)(tasks, context))


# ---- status --------------------------------------------------------------------------------------------


def _last_metrics(run_dir: Path) -> tuple[int | None, float | None]:
    path = run_dir / DIAGNOSTICS_FILE
    if not path.is_file():
        return None, None
    step, ei = None, None
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line being written
        if "event" in record or "step" not in record:
            continue
        step, ei = record["step"], record.get("ei", ei)
    return step, ei


def status_rows(out: str | Path) -> list[dict[str, Any]]:
    """One row per run of the sweep in ``out`` (from sweep.json, run.json, diagnostics.jsonl, state/)."""
    out = Path(out)
    manifest_path = out / MANIFEST_FILE
    if not manifest_path.is_file():
        raise EntError(f"'{out}' holds no {MANIFEST_FILE}", "point at the --out folder of an `ent sweep`")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    entries = list(manifest.get("runs", []))
    listed = {entry["name"] for entry in entries}
    if (out / RUNS_DIR).is_dir():
        entries += [{"name": p.name, "settings": {}, "in_manifest": False}
                    for p in sorted((out / RUNS_DIR).iterdir()) if p.is_dir() and p.name not in listed]
    rows = []
    for entry in entries:
        name = entry["name"]
        run_dir = out / RUNS_DIR / name
        record = read_record(run_dir) or {}
        settings = entry.get("settings", {})
        config = record.get("config") or {}
        state = _read_state(out / STATE_DIR / f"{name}.json") if (out / STATE_DIR / f"{name}.json").is_file() else {}
        last_step, last_ei = _last_metrics(run_dir)
        step = record.get("step", last_step)
        rows.append({
            "name": name,
            "model": record.get("model", entry.get("model", settings.get("model"))),
            "companion": record.get("companion", entry.get("companion", settings.get("companion"))),
            "seed": record.get("seed", entry.get("seed", settings.get("seed"))),
            "status": record.get("status", "pending"),
            "active": lock_is_held(out / STATE_DIR / f"{name}.lock"),
            "step": step,
            "steps": config.get("steps", entry.get("steps", settings.get("steps"))),
            "ei": last_ei,
            "gpu": state.get("gpu"),
            "host": state.get("host"),
            "executor": state.get("executor"),
            "attempts": len(state.get("attempts", [])),
            "in_manifest": entry.get("in_manifest", True),
            "dir": str(run_dir),
        })
    return rows


def print_status(rows: list[dict[str, Any]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in ("run", "model", "companion", "seed", "status", "step", "EI", "GPU", "host"):
        table.add_column(column, overflow="fold", no_wrap=column in ("run", "status"),
                         justify="right" if column in ("seed", "step", "EI") else "left")
    colours = {"finished": "green", "failed": "red", "diverged": "red", "pending": "dim"}
    for row in rows:
        status = row["status"]
        if status in ("running", "starting", "resuming") and not row["active"]:
            status = f"{status} (stopped: resumable)"
        colour = colours.get(row["status"], "yellow")
        step = f"{'-' if row['step'] is None else row['step']}/{row['steps'] if row['steps'] is not None else '?'}"
        ei = "" if row["ei"] is None else f"{row['ei']:.3f}"
        name = row["name"] if row["in_manifest"] else f"{row['name']} (not in sweep.json)"
        table.add_row(name, str(row["model"] or ""), str(row["companion"] or ""), "" if row["seed"] is None else str(row["seed"]),
                      f"[{colour}]{status}[/{colour}]", step, ei, str(row["gpu"] or ""), str(row["host"] or ""))
    Console(width=None if sys.stdout.isatty() else 200).print(table)
