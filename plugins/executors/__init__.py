"""Built-in sweep executors: ``local`` (one after another, or one run per visible GPU), ``ray`` and ``slurm``.

Each registers an :class:`~ent_harness.specs.ExecutorSpec` whose ``execute`` target is imported only when a
sweep uses it, so ``ent list-plugins`` never imports ray, submitit or torch (docs/sweeps.md).
"""

from collections.abc import Callable

from ent_harness.hookspecs import hookimpl
from ent_harness.specs import ExecutorSpec

# each executor's settings and what each must be (SETTING_KINDS; None: the executor checks it)
LOCAL_SETTINGS = {"gpus": "count"}
RAY_SETTINGS = {"address": "text", "num_cpus": "count", "cpus_per_run": "number", "gpus_per_run": "number",
                "max_retries": "count", "runtime_env": "table", "object_store_memory": "count", "log_to_driver": "flag"}
SLURM_SETTINGS = {"cluster": "text", "partition": "text", "time": None,  # minutes or "HH:MM:SS"
                  "gpus_per_run": "count", "cpus_per_run": "count", "mem_gb": "number", "array": "flag",
                  "array_parallelism": "count", "account": "text", "qos": "text", "constraint": "text",
                  "setup": "texts", "additional": "table", "job_name": "text"}


def _settings(kinds: dict[str, str | None]) -> dict[str, tuple]:
    """ExecutorSpec's ``settings`` and ``setting_kinds`` from one table."""
    return {"settings": tuple(kinds), "setting_kinds": tuple((k, v) for k, v in kinds.items() if v is not None)}


@hookimpl
def register_executors(register: Callable[[ExecutorSpec], None]) -> None:
    register(ExecutorSpec(
        name="local",
        description="this machine: one run after another, or one run per visible GPU in parallel (--gpus N)",
        execute="ent_plugins.executors.local:execute",
        **_settings(LOCAL_SETTINGS),
    ))
    register(ExecutorSpec(
        name="ray",
        description="one Ray task per run (1 GPU each, CPUs for tiny models) on a local or remote Ray cluster",
        execute="ent_plugins.executors.ray_executor:execute",
        **_settings(RAY_SETTINGS),
        requires=("ray",),
        extra="ray",
    ))
    register(ExecutorSpec(
        name="slurm",
        description="one SLURM job (or a job array) per run through submitit; cluster = \"local\" runs them here",
        execute="ent_plugins.executors.slurm_executor:execute",
        **_settings(SLURM_SETTINGS),
        requires=("submitit",),
        extra="slurm",
    ))
