"""The ``ray`` executor: one Ray task per run.

It connects to ``address`` (``--ray-address``: ``auto`` on a node of a running cluster, ``ray://head:10001``
through Ray Client) or starts a local cluster for the sweep (``num_cpus`` of them, no dashboard, quiet logs)
and stops it at the end. A run asks for ``gpus_per_run`` GPUs (default: the run's ``gpus``, 1) or, for the
embedded tiny models and ``device = "cpu"`` runs, ``cpus_per_run`` CPUs (default 1) and no GPU. The task is
:func:`ent_harness.sweep.run_task`: it runs ``ent run`` in a subprocess on the worker, which sees the GPU Ray
assigned through ``CUDA_VISIBLE_DEVICES``; run directories go to the sweep's ``--out``, which must be on
storage every node sees. ``max_retries`` (default 0) lets Ray re-run a task whose worker died; the retry
resumes the run from its last checkpoint.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ent_harness.errors import EntError
from ent_harness.sweep import ExecutorContext, SweepTask, describe, failed_result

LOCAL_OBJECT_STORE = 256 * 1024 * 1024  # tasks exchange a few hundred bytes: keep the local store small


def _resources(task: SweepTask, settings: dict[str, Any]) -> dict[str, Any]:
    if task.gpus:
        # never fewer GPUs than a data-parallel run (gpus = N) starts workers on
        return {"num_gpus": max(settings.get("gpus_per_run", task.gpus), task.gpus),
                "num_cpus": settings.get("cpus_per_run", 1)}
    return {"num_gpus": 0, "num_cpus": settings.get("cpus_per_run", 1)}


def execute(tasks: list[SweepTask], context: ExecutorContext) -> list[dict[str, Any]]:
    import ray

    settings = context.settings
    address = settings.get("address") or None
    options: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": bool(settings.get("log_to_driver")),
                               "namespace": "ent-sweep"}
    if settings.get("runtime_env"):
        options["runtime_env"] = dict(settings["runtime_env"])
    if address:
        context.echo(f"ray: connecting to {address}")
        try:
            ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise EntError(f"Could not connect to the Ray cluster at {address} ({' '.join(str(exc).split())[:200]})",
                           "check --ray-address (ray://HEAD:10001, or auto on a node of the cluster)") from None
    else:
        wanted = sum(_resources(t, settings)["num_cpus"] for t in tasks)
        num_cpus = int(settings.get("num_cpus") or max(1, min(os.cpu_count() or 1, wanted)))
        context.echo(f"ray: starting a local cluster ({num_cpus} CPUs)")
        ray.init(num_cpus=num_cpus, include_dashboard=False,
                 object_store_memory=int(settings.get("object_store_memory", LOCAL_OBJECT_STORE)), **options)
    try:
        gpu_tasks = [t for t in tasks if t.gpus]
        available = ray.cluster_resources().get("GPU", 0)
        if gpu_tasks and not available and not address:
            raise EntError(f"{len(gpu_tasks)} runs need a GPU and this machine's Ray cluster has none",
                           'set device = "cpu" under [run] or point --ray-address at a cluster with GPUs')
        if gpu_tasks and not available:
            context.echo(f"ray: the cluster has no GPU now; {len(gpu_tasks)} runs wait for one (autoscaling?)")
        remote = ray.remote(context.runner)
        pending: dict[Any, SweepTask] = {}
        for task in tasks:
            resources = _resources(task, settings)
            ref = remote.options(name=f"ent-sweep:{task.name}", max_retries=int(settings.get("max_retries", 0)),
                                 **resources).remote(task, None, "ray")
            pending[ref] = task
            what = f"{resources['num_gpus']} GPU" if resources["num_gpus"] else f"{resources['num_cpus']} CPU"
            context.echo(f"{task.name}: submitted ({what})")
        results = []
        refs = list(pending)
        while refs:
            done, refs = ray.wait(refs, num_returns=1)
            for ref in done:
                try:
                    result = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - a dead worker: the run directory stays resumable
                    result = failed_result(pending[ref], exc)
                context.echo(describe(result))
                results.append(result)
        return results
    finally:
        ray.shutdown()
