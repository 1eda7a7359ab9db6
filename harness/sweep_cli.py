"""``ent sweep SWEEP.toml`` and ``ent sweep status DIR``: a grid of runs on an executor plugin (docs/sweeps.md).

The driver reads TOML and JSON only; the executor (and with it ray, submitit or torch) is imported when
there is work to hand over.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from .errors import EntError


class _SweepGroup(click.Group):
    """``ent sweep FILE ...`` is ``ent sweep run FILE ...``; ``ent sweep status DIR`` is a subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group("sweep", cls=_SweepGroup)
def sweep_group() -> None:
    """Run a grid of `ent run`s (models x companions x seeds x any setting) locally, on Ray or on SLURM.

    \b
      ent sweep examples/sweeps/tiny.toml --out sweeps/tiny              (this machine, one run per GPU)
      ent sweep examples/sweeps/tiny.toml --executor ray --out sweeps/tiny
      ent sweep examples/sweeps/tiny.toml --executor slurm --out /shared/sweeps/tiny
      ent sweep status sweeps/tiny [--json]

    A second invocation skips finished runs and resumes interrupted ones. File format: docs/sweeps.md.
    """


def _runs(count: int) -> str:
    return f"{count} run{'' if count == 1 else 's'}"


def _echo(line: str) -> None:
    click.echo(line, err=True)


@sweep_group.command("run")
@click.argument("sweep_file", type=click.Path(dir_okay=False))
@click.option("--executor", help="local (default), ray, slurm, or another executor plugin (`ent list-plugins --kind executor`).")
@click.option("--out", type=click.Path(file_okay=False), help="Sweep folder (default: [sweep] out, else sweeps/NAME).")
@click.option("--gpus", type=int, help="local: GPU slots to spread runs over (default: detected; env ENT_SWEEP_GPUS).")
@click.option("--ray-address", help="ray: an existing cluster (auto, ray://HEAD:10001) instead of a local one.")
@click.option("--slurm-cluster", type=click.Choice(["slurm", "local", "debug"]),
              help="slurm: submitit's cluster (default: slurm where sbatch exists, else local).")
@click.option("--retries", type=int, help="Resume a run that stopped this many times within this invocation (default 0).")
@click.option("--no-wait", is_flag=True, help="slurm: submit the jobs and return (follow with `ent sweep status`).")
@click.option("--dry-run", is_flag=True, help="Print what each run needs (start, resume, skip) and do nothing.")
def sweep_run_command(sweep_file: str, executor: str | None, out: str | None, gpus: int | None,
                      ray_address: str | None, slurm_cluster: str | None, retries: int | None, no_wait: bool,
                      dry_run: bool) -> None:
    """Expand SWEEP_FILE into runs and carry out those not finished."""
    from .plugin_manager import get_registry
    from .sweep import (
        check_requirements,
        execute_sweep,
        load_sweep,
        plan_sweep,
        print_status,
        resolve_out,
        status_rows,
        write_manifest,
    )

    registry = get_registry()
    sweep = load_sweep(sweep_file, registry)
    name = executor or sweep.executor or "local"
    spec = registry.get("executor", name)
    flags = {"gpus": ("local", gpus), "ray-address": ("ray", ray_address), "slurm-cluster": ("slurm", slurm_cluster),
             "no-wait": ("slurm", no_wait or None)}
    for flag, (owner, value) in flags.items():
        if value is not None and owner != name:
            raise EntError(f"--{flag} applies to the {owner} executor, not {name}", f"add --executor {owner} or drop it")
    if retries is not None and retries < 0:
        raise EntError(f"Invalid --retries {retries}", "give 0 or more")
    folder = resolve_out(sweep, out)
    actions = plan_sweep(sweep, folder)
    todo = [run for run in sweep.runs if actions[run.name] != "skip"]
    counts = {a: sum(1 for v in actions.values() if v == a) for a in ("start", "resume", "extend", "skip")}
    summary = ", ".join(f"{n} to {a}" for a, n in counts.items() if n)
    if todo and not dry_run:
        check_requirements(spec)
    _echo(f"sweep {sweep.name}: {_runs(len(sweep.runs))} ({summary}) -> {folder}")
    if dry_run:
        for run in sweep.runs:
            click.echo(f"{actions[run.name]:7} {run.name}  {json.dumps(run.settings, default=list)}")
        return
    write_manifest(sweep, folder, name, actions)
    if todo:
        overrides: dict[str, Any] = {"gpus": gpus, "address": ray_address, "cluster": slurm_cluster}
        results = execute_sweep(sweep, folder, registry, name, overrides,
                                sweep.retries if retries is None else retries, actions, _echo, wait=not no_wait)
        if no_wait:
            _echo(f"submitted {len(results)} jobs; follow them with: ent sweep status {folder}")
            return
    else:
        _echo("nothing to do: every run is finished")
    rows = status_rows(folder)
    print_status(rows, f"sweep {sweep.name} ({folder})")
    diverged = [row["name"] for row in rows if row["in_manifest"] and row["status"] == "diverged"]
    if diverged:  # a result, not a failure: a new attempt would diverge again
        _echo(f"{_runs(len(diverged))} diverged (see their report.md); they are not run again")
    unfinished = [row["name"] for row in rows if row["in_manifest"] and row["status"] not in ("finished", "diverged")]
    if unfinished:
        _echo(f"{_runs(len(unfinished))} not finished; run the same command again to resume them")
        sys.exit(1)


@sweep_group.command("status")
@click.argument("sweep_dir", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list (one object per run) instead of a table.")
def sweep_status_command(sweep_dir: str, as_json: bool) -> None:
    """Show each run of a sweep folder: status, step, last EI, where it ran."""
    from .sweep import print_status, status_rows

    rows = status_rows(sweep_dir)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    print_status(rows, f"sweep {sweep_dir}")
