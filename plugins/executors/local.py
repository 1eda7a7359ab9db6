"""The ``local`` executor: runs on this machine.

Without GPUs (or with one) the runs go one after another. With several visible GPUs (``CUDA_VISIBLE_DEVICES``
listing several, or ``torch.cuda.device_count() > 1``) one run goes to each GPU in parallel, its ``ent run``
pinned with ``CUDA_VISIBLE_DEVICES=<that GPU>``; the next run waiting in line takes the first GPU that frees
up. ``--gpus N`` (or ``ENT_SWEEP_GPUS=N``, or ``gpus = N`` under ``[local]``) sets the number of GPU slots
without detection: ``--gpus 0`` forces one run at a time, and tests use fake slots on a CPU machine.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from typing import Any

from ent_harness.errors import EntError
from ent_harness.sweep import ExecutorContext, SweepTask, describe, failed_result

GPUS_ENV = "ENT_SWEEP_GPUS"


def _listed_devices() -> list[str] | None:
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return None
    return [d.strip() for d in listed.split(",") if d.strip() and d.strip() != "-1"]


def gpu_slots(setting: Any = None) -> list[str]:
    """The GPU ids runs are spread over: ``setting`` (or $ENT_SWEEP_GPUS) slots, else the visible GPUs."""
    env = os.environ.get(GPUS_ENV)
    count = setting if setting is not None else env
    listed = _listed_devices()
    if count is not None:
        try:
            count = int(count)
        except (TypeError, ValueError):
            raise EntError(f"Invalid GPU count {count!r}", f"--gpus and ${GPUS_ENV} take a number") from None
        if count < 0:
            raise EntError(f"Invalid GPU count {count}", "give 0 or more")
        if listed and len(listed) >= count:
            return listed[:count]
        return [str(i) for i in range(count)]
    if listed is not None:
        return listed
    try:
        import torch
    except ImportError:
        return []
    return [str(i) for i in range(torch.cuda.device_count())]


def execute(tasks: list[SweepTask], context: ExecutorContext) -> list[dict[str, Any]]:
    gpus = gpu_slots(context.settings.get("gpus"))
    too_big = next((task for task in tasks if task.gpus > max(len(gpus), 1)
                    and task.settings.get("device") != "cpu"), None)  # --device cpu: processes, not GPUs
    if too_big is not None:  # found before anything starts, not inside the run's log
        raise EntError(f"Run '{too_big.name}' asks for {too_big.gpus} GPUs but the local executor has "
                       f"{len(gpus)} GPU slot(s)", "give it fewer gpus, or run the sweep on a larger host")
    if len(gpus) <= 1:
        gpu = gpus[0] if gpus else None
        results = []
        for task in tasks:
            context.echo(f"{task.name}: running{' on GPU ' + gpu if gpu is not None else ''}")
            try:
                result = context.runner(task, gpu, "local")
            except Exception as exc:  # noqa: BLE001 - one run's failure must not stop the others
                result = failed_result(task, exc)
            context.echo(describe(result))
            results.append(result)
        return results
    return _parallel(tasks, context, gpus)


def _parallel(tasks: list[SweepTask], context: ExecutorContext, gpus: list[str]) -> list[dict[str, Any]]:
    """One worker thread per GPU slot; a run takes max(1, task.gpus) free slots (FIFO)."""
    queue = deque(tasks)
    free = list(gpus)
    condition = threading.Condition()
    results: list[dict[str, Any]] = []

    def worker() -> None:
        while True:
            with condition:
                if not queue:
                    return
                task = queue.popleft()
                need = min(max(1, task.gpus), len(gpus))
                condition.wait_for(lambda need=need: len(free) >= need)
                mine = [free.pop(0) for _ in range(need)]
            placed = ",".join(mine)
            context.echo(f"{task.name}: running on GPU {placed}")
            try:
                result = context.runner(task, placed, "local")
            except Exception as exc:  # noqa: BLE001
                result = failed_result(task, exc)
            with condition:
                free.extend(mine)
                free.sort(key=gpus.index)
                results.append(result)
                condition.notify_all()
            context.echo(describe(result))

    threads = [threading.Thread(target=worker, name=f"ent-sweep-gpu-{gpu}", daemon=True) for gpu in gpus]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    except KeyboardInterrupt:
        with condition:
            queue.clear()
        context.echo("interrupted: the running runs checkpoint and stop (resume with the same command)")
        for thread in threads:
            thread.join()
        raise
    return results
