"""Built-in sweep executors: ``local`` (one after another, or one run per visible GPU), ``ray`` and ``slurm``.

Each registers an :class:`~ent_harness.specs.ExecutorSpec` whose ``execute`` target is imported only when a
sweep uses it, so ``ent list-plugins`` never imports ray, submitit or torch (docs/sweeps.md).
"""

from collections.abc import Callable

from ent_harness.hookspecs import hookimpl
from ent_harness.specs import ExecutorSpec

LOCAL_SETTINGS = ("gpus",)
RAY_SETTINGS = ("address", "num_cpus", "cpus_per_run", "gpus_per_run", "max_retries", "runtime_env",
                "object_store_memory", "log_to_driver")
SLURM_SETTINGS = ("cluster", "partition", "time", "gpus_per_run", "cpus_per_run", "mem_gb", "array",
                  "array_parallelism", "account", "qos", "constraint", "setup", "additional", "job_name")
LOCAL_KINDS = (("gpus", "count"),)
RAY_KINDS = (("address", "text"), ("num_cpus", "count"), ("cpus_per_run", "number"), ("gpus_per_run", "number"),
             ("max_retries", "count"), ("runtime_env", "table"), ("object_store_memory", "count"),
             ("log_to_driver", "flag"))
SLURM_KINDS = (("cluster", "text"), ("partition", "text"), ("gpus_per_run", "count"), ("cpus_per_run", "count"),
               ("mem_gb", "number"), ("array", "flag"), ("array_parallelism", "count"), ("account", "text"),
               ("qos", "text"), ("constraint", "text"), ("setup", "texts"), ("additional", "table"),
               ("job_name", "text"))  # time: minutes or "HH:MM:SS", checked by the executor


@hookimpl
def register_executors(register: Callable[[ExecutorSpec], None]) -> None:
    register(ExecutorSpec(
        name="local",
        description="this machine: one run after another, or one run per visible GPU in parallel (--gpus N)",
        execute="ent_plugins.executors.local:execute",
        settings=LOCAL_SETTINGS,
        setting_kinds=LOCAL_KINDS,
    ))
    register(ExecutorSpec(
        name="ray",
        description="one Ray task per run (1 GPU each, CPUs for tiny models) on a local or remote Ray cluster",
        execute="ent_plugins.executors.ray_executor:execute",
        settings=RAY_SETTINGS,
        setting_kinds=RAY_KINDS,
        requires=("ray",),
        extra="ray",
    ))
    register(ExecutorSpec(
        name="slurm",
        description="one SLURM job (or a job array) per run through submitit; cluster = \"local\" runs them here",
        execute="ent_plugins.executors.slurm_executor:execute",
        settings=SLURM_SETTINGS,
        setting_kinds=SLURM_KINDS,
        requires=("submitit",),
        extra="slurm",
    ))
