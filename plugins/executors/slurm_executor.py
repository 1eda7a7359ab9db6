"""The ``slurm`` executor: one SLURM job per run, or one job array for the sweep, through submitit.

Settings (the ``[slurm]`` table): ``partition``, ``time`` (minutes, or ``"HH:MM:SS"`` / ``"D-HH:MM:SS"``),
``gpus_per_run`` (default: the run's ``gpus``, 1; 0 for tiny and CPU runs), ``cpus_per_run`` (default 8 for
GPU runs, 1 otherwise), ``mem_gb``, ``array`` (default true: ``executor.map_array``), ``array_parallelism``,
``account``, ``qos``, ``constraint``, ``setup`` (shell lines before the job: ``module load``, activating an
environment), ``additional`` (any other sbatch option), ``job_name``, and ``cluster``: ``slurm``, ``local``
(submitit's LocalExecutor: the jobs run as processes of this machine; the tests use it) or ``debug``; by
default submitit picks slurm where ``sbatch`` exists. Each job calls :func:`ent_harness.sweep.run_task`, so a
job that is preempted or times out leaves a resumable run; submitit requeues a timed-out or preempted job
(``Checkpointable``) and the requeued job resumes the run.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import submitit
from ent_harness.errors import EntError
from ent_harness.sweep import ExecutorContext, SweepTask, describe, failed_result

SLURM_DIR = "slurm"


class RunJob(submitit.helpers.Checkpointable):
    """The job's callable: one run. On timeout or preemption submitit requeues it with the same task."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner

    def __call__(self, task: SweepTask) -> dict[str, Any]:
        return self.runner(task, None, "slurm")


def minutes(value: Any) -> int:
    """SLURM time formats: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", str(value).strip())
    if not match or (isinstance(value, int) and value <= 0):
        raise EntError(f"Invalid [slurm] time {value!r}", 'give minutes or "HH:MM:SS" / "D-HH:MM:SS"')
    days, a, b, c = match.groups()
    parts = [int(x) for x in (a, b, c) if x is not None]
    if days is not None:
        hours, mins, secs = (parts + [0, 0])[:3]
        seconds = int(days) * 86400 + hours * 3600 + mins * 60 + secs
    elif len(parts) == 1:
        seconds = parts[0] * 60
    elif len(parts) == 2:
        seconds = parts[0] * 60 + parts[1]
    else:
        seconds = parts[0] * 3600 + parts[1] * 60 + parts[2]
    if seconds <= 0:
        raise EntError(f"Invalid [slurm] time {value!r}", "give a positive duration")
    return max(1, math.ceil(seconds / 60))


def _parameters(settings: dict[str, Any], gpus: int, name: str) -> dict[str, Any]:
    params: dict[str, Any] = {
        "name": settings.get("job_name", f"ent-{name}"),
        "timeout_min": minutes(settings.get("time", "24:00:00")),
        "nodes": 1,
        "tasks_per_node": 1,
        "gpus_per_node": max(int(settings.get("gpus_per_run", gpus)), gpus) if gpus else 0,
        "cpus_per_task": int(settings.get("cpus_per_run", 8 if gpus else 1)),
    }
    if settings.get("mem_gb"):
        params["mem_gb"] = settings["mem_gb"]
    for key in ("partition", "account", "qos", "constraint", "array_parallelism"):
        if settings.get(key) is not None:
            params[f"slurm_{key}"] = settings[key]
    if settings.get("setup"):
        params["slurm_setup"] = list(settings["setup"])
    if settings.get("additional"):
        params["slurm_additional_parameters"] = dict(settings["additional"])
    return params


def execute(tasks: list[SweepTask], context: ExecutorContext) -> list[dict[str, Any]]:
    settings = context.settings
    folder = Path(context.out) / SLURM_DIR / "%j"
    try:
        executor = submitit.AutoExecutor(folder=folder, cluster=settings.get("cluster") or None)
    except (ValueError, RuntimeError) as exc:  # an unknown cluster; cluster = "slurm" where there is no srun
        raise EntError(f"submitit: {' '.join(str(exc).split())}",
                       'run on a SLURM login node, or set cluster = "local" under [slurm] (or --slurm-cluster local)'
                       ) from None
    context.echo(f"slurm: submitting through submitit ({executor.cluster})")
    submitted: list[tuple[Any, SweepTask]] = []
    job = RunJob(context.runner)
    for gpus in sorted({t.gpus for t in tasks}):
        group = [t for t in tasks if t.gpus == gpus]
        executor.update_parameters(**{k: v for k, v in _parameters(settings, gpus, context.name).items()
                                      if executor.cluster == "slurm" or not k.startswith("slurm_")})
        if settings.get("array", True):
            jobs = executor.map_array(job, group)
        else:
            jobs = [executor.submit(job, task) for task in group]
        submitted += list(zip(jobs, group))
        for handle, task in zip(jobs, group):
            context.echo(f"{task.name}: job {handle.job_id}")
    template = folder  # submitit creates the literal "%j" folder too; drop it when it stayed empty
    if template.is_dir() and not any(template.iterdir()):
        template.rmdir()
    if not context.wait:
        return [{"name": t.name, "action": "submitted", "status": "submitted", "job_id": j.job_id}
                for j, t in submitted]
    results = []
    for handle, task in submitted:
        try:
            result = handle.result()
        except Exception as exc:  # noqa: BLE001 - a failed job: the run directory stays resumable
            result = failed_result(task, exc)
        result["job_id"] = handle.job_id
        context.echo(describe(result))
        results.append(result)
    return results
