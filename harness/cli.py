"""The `ent` command line. Thin: parse, resolve, hand over to the harness.

Errors a user can fix (:class:`EntError`, click usage errors) print one line and exit 2; a traceback is
shown only with ``-v``. Heavy libraries are imported inside the commands that need them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import EntError

KINDS = ("model", "family", "companion", "probe_set", "metric", "experiment", "executor")


def _registry() -> Any:
    from .plugin_manager import get_registry

    return get_registry()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Show full tracebacks on errors.")
@click.version_option(__version__, prog_name="ent")
def cli(verbose: bool) -> None:
    """ent: fine-tune code LMs and measure how their concept geometry changes.

    \b
    Quick start (embedded tiny model, shipped data, CPU, about a minute):
      ent run --model tiny-qwen2 --companion nl --out runs/demo
    """


def plugin_rows(kind: str | None) -> list[dict[str, str]]:
    registry = _registry()
    rows: list[dict[str, str]] = []
    for spec_kind in KINDS:
        if kind and spec_kind != kind:
            continue
        for spec in registry.all(spec_kind):
            rows.append(
                {"name": spec.name, "kind": spec_kind, "plugin": spec.plugin, "distribution": spec.distribution,
                 "version": spec.version, "status": "ok", "description": spec.description}
            )
    for rejected in registry.rejected:
        spec = rejected.spec
        if kind and spec.kind != kind:
            continue
        rows.append({"name": spec.name, "kind": spec.kind, "plugin": spec.plugin, "distribution": spec.distribution,
                     "version": spec.version, "status": "rejected", "error": rejected.error, "description": spec.description})
    if not kind:
        for broken in registry.broken:
            rows.append({"name": broken.plugin, "kind": "plugin", "plugin": broken.plugin,
                         "distribution": broken.distribution, "version": broken.version, "status": "broken",
                         "error": broken.error, "description": ""})
    return rows


@cli.command("list-plugins")
@click.option("--kind", type=click.Choice(KINDS), help="Only components of this kind.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def list_plugins(kind: str | None, as_json: bool) -> None:
    """List every registered component and every plugin that failed to load."""
    rows = plugin_rows(kind)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="ent plugins", show_lines=False)
    for column in ("name", "kind", "plugin", "distribution", "version", "status"):
        table.add_column(column, overflow="fold")
    for row in rows:
        status = row["status"]
        if status != "ok":
            status = f"[red]{status}[/red]: {row.get('error', '')}"
        table.add_row(row["name"], row["kind"], row["plugin"], row["distribution"], row["version"], status)
    Console().print(table)


@cli.command("run")
@click.option("--model", help="Model plugin name (see `ent list-plugins --kind model`).")
@click.option("--model-path", type=click.Path(file_okay=False), help="Load the weights from this local checkout.")
@click.option("--random-weights", is_flag=True, default=None, help="Use a seeded shape twin (random weights, no download).")
@click.option("--companion", help="Companion stream mixed with code: nl, math, none, ... (default nl).")
@click.option("--steps", type=int, help="Training steps (default 5000; tiny models 200).")
@click.option("--diag-every", type=int, help="Diagnostics every K steps, plus step 0 and the last step.")
@click.option("--diag-window", "diag_windows", multiple=True, metavar="START:END:EVERY",
              help="A denser diagnostic window, e.g. 1500:3500:100 (repeatable).")
@click.option("--seed", type=int, help="Seed of data order, LoRA init and dropout (default 0).")
@click.option("--out", type=click.Path(file_okay=False), help="Run directory (default runs/MODEL-COMPANION-sSEED).")
@click.option("--config", "config_file", type=click.Path(), help="TOML file of settings (flags override it).")
@click.option("--probes", help="Probe set name or a probes JSONL file (default factorial-v1).")
@click.option("--companion-share", type=float, help="Share of companion sequences (default 0.5).")
@click.option("--seq-len", type=int, help="Tokens per packed training sequence.")
@click.option("--batch-size", type=int, help="Sequences per micro-batch.")
@click.option("--grad-accum", type=int, help="Micro-batches per optimiser step (default 1).")
@click.option("--lr", type=float, help="Learning rate (default 1e-4).")
@click.option("--warmup-steps", type=int, help="Linear warm-up steps (default 100).")
@click.option("--optimizer", type=click.Choice(["auto", "adamw", "adamw_fused", "paged_adamw", "adamw8bit", "paged_adamw8bit"]),
              help="auto: fused torch AdamW on CUDA under --speed fast, else paged 32-bit AdamW (bitsandbytes); torch AdamW on CPU.")
@click.option("--gradient-checkpointing", type=click.Choice(["auto", "on", "off"]), help="auto: on for CUDA.")
@click.option("--speed", type=click.Choice(["auto", "fast", "low-memory", "plain"]),
              help="auto: fast on CUDA (same numbers, see docs/protocol.md), plain on CPU.")
@click.option("--low-memory", "speed", flag_value="low-memory", help="Same as --speed low-memory.")
@click.option("--memory-budget", "memory_budget_gib", type=float, metavar="GIB",
              help="GPU memory --speed fast may plan for (default 72 GiB: an 80 GB card).")
@click.option("--compile", "compile_layers", type=click.Choice(["auto", "on", "off"]),
              help="torch.compile the decoder layers for training (auto: on CUDA with --speed fast or low-memory).")
@click.option("--gpus", type=int, help="Data-parallel over this many GPUs of this host (default 1).")
@click.option("--checkpoint-every", type=int, help="Also checkpoint every K steps (default: at diagnostic steps).")
@click.option("--max-rollbacks", type=int, help="Non-finite rollbacks before stopping as diverged (default 3).")
@click.option("--quantize", type=click.Choice(["auto", "nf4", "none"]), help="4-bit NF4 base (auto: where bitsandbytes works).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="Where to train (default auto).")
@click.option("--init-adapter", metavar="RUN_DIR[:STEP]", help="Start from a saved adapter (reversibility runs).")
@click.option("--inject-fault", "inject_faults", multiple=True, metavar="KIND@STEP",
              help="nan-loss, nan-adapter, crash or write-fail at STEP (testing the guards; repeatable).")
@click.option("--no-tensorboard", "tensorboard", flag_value=False, default=None, help="Write no TensorBoard events.")
@click.option("--offline", is_flag=True, default=None, help="Use only offline data sources.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False), metavar="RUN_DIR",
              help="Continue RUN_DIR from its last verified checkpoint (only --steps and --inject-fault may be added).")
@click.option("--force", is_flag=True, help="Overwrite a non-empty run directory.")
def run_command(config_file: str | None, out: str | None, force: bool, resume_dir: str | None, **flags: Any) -> None:
    """Fine-tune with QLoRA on code + a companion and record the geometry at every diagnostic step."""
    from .config import read_config_file, resolve_run_config
    from .run import prepare_resume, prepare_run

    registry = _registry()
    flags = {k: (tuple(v) if isinstance(v, tuple) and v else (None if v == () else v)) for k, v in flags.items()}
    if resume_dir:
        extra = sorted(k for k, v in flags.items() if v is not None and k not in ("steps", "inject_faults"))
        if config_file or out or force or extra:
            name = "--" + (extra[0] if extra else "config" if config_file else "out" if out else "force").replace("_", "-")
            raise EntError(f"{name} cannot be combined with --resume", "a resumed run keeps its recorded settings; "
                           "only --steps and --inject-fault may be given")
        prepared = prepare_resume(Path(resume_dir), registry, flags.get("steps"), flags.get("inject_faults") or ())
        _run_with_progress(prepared)
        return
    file_values = read_config_file(config_file) if config_file else {}
    model_name = flags.get("model") or file_values.get("model")
    if not model_name:
        raise EntError("No model given", "pass --model NAME (see `ent list-plugins --kind model`)")
    model_spec = registry.get("model", model_name)
    companion = flags.get("companion") or file_values.get("companion") or "nl"
    registry.get("companion", companion)
    config = resolve_run_config(dict(model_spec.run_defaults), file_values, {**flags, "out": out})
    from .distributed import check_gpus

    check_gpus(config.gpus, config.device)  # before the run directory is made
    run_dir = Path(config.out or f"runs/{config.model}-{config.companion}-s{config.seed}")
    _run_with_progress(prepare_run(config, registry, run_dir, force))


def _run_with_progress(prepared: Any) -> None:
    from .progress import run_with_progress

    record = run_with_progress(prepared)
    if record["status"] != "finished":
        sys.exit(1)


@cli.command("diagnose")
@click.option("--activations", type=click.Path(), help="An n x d .npy file (or .npz with key X).")
@click.option("--probes", help="Probes JSONL (with --activations: one line per row) or a probe-set name.")
@click.option("--model", help="Model plugin to extract activations from (instead of --activations).")
@click.option("--model-path", type=click.Path(file_okay=False), help="Load the weights from this local checkout.")
@click.option("--random-weights", is_flag=True, help="Use a seeded shape twin (random weights, no download).")
@click.option("--adapter", type=click.Path(), help="A saved adapter folder (adapters/step-N) to apply to --model.")
@click.option("--base-activations", type=click.Path(), help="Base-model activations for CKA drift (.npy/.npz).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the held-out splits and null baseline.")
@click.option("--quantize", type=click.Choice(["auto", "nf4", "none"]), default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def diagnose_command(activations: str | None, probes: str | None, model: str | None, model_path: str | None,
                     random_weights: bool, adapter: str | None, base_activations: str | None, seed: int,
                     quantize: str, as_json: bool) -> None:
    """Run the whole metric suite on activations you bring, or on a model (and adapter) without training."""
    from .diagnose import diagnose_activations, diagnose_model, print_summary

    if activations and model:
        raise EntError("Give either --activations or --model, not both")
    if activations:
        if not probes:
            raise EntError("--activations needs --probes PROBES.jsonl", "give the labels of each row")
        result = diagnose_activations(activations, probes, seed, base_activations)
    elif model:
        result = diagnose_model(_registry(), model, adapter, probes or "factorial-v1", seed, quantize,
                                model_path, random_weights)
    else:
        raise EntError("Nothing to diagnose", "pass --activations ACTS --probes PROBES.jsonl, or --model NAME")
    from .rundir import to_jsonable

    if as_json:
        click.echo(json.dumps(to_jsonable(result)))
    else:
        print_summary(result)


@cli.command("report")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Folder for report.md, CSVs, PNGs.")
@click.option("--title", default="ent report", show_default=True)
def report_command(run_dirs: tuple[str, ...], out: str, title: str) -> None:
    """Tables and figures across run directories (collapse, trajectories, SV dynamics, margins, ...)."""
    from .reporting.build import write_report

    path = write_report(list(run_dirs), out, title)
    click.echo(f"wrote {path} (and CSV tables, figures, summary.json)")


@cli.command("experiment")
@click.argument("name")
@click.option("--model", "models", multiple=True, help="Model(s) to use instead of the experiment's (repeatable).")
@click.option("--seeds", type=int, help="Number of seeds (seeds 0..N-1, or from --seed-base).")
@click.option("--seed-base", type=int, default=0, show_default=True)
@click.option("--steps", type=int, help="Training steps of each run (default: the model's).")
@click.option("--diag-every", type=int, help="Diagnostics every K steps.")
@click.option("--random-weights", is_flag=True, help="Use shape twins (no download): exercises the whole pipeline.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--companion", help="reversibility: the companion the B3 adapter is continued under (default math).")
@click.option("--out", type=click.Path(file_okay=False), help="Folder (default experiments/NAME).")
@click.option("--rebuild", is_flag=True, help="Only rebuild the tables from the existing run directories.")
def experiment_command(name: str, models: tuple[str, ...], seeds: int | None, seed_base: int, steps: int | None,
                       diag_every: int | None, random_weights: bool, device: str | None, companion: str | None,
                       out: str | None, rebuild: bool) -> None:
    """Run an experiment of the paper (missing runs only) and write its tables and figures."""
    from .experiments import ExperimentOptions
    from .reporting.build import write_report
    from .specs import resolve_target

    registry = _registry()
    spec = registry.get("experiment", name)
    for model in models:
        registry.get("model", model)
    folder = Path(out or f"experiments/{name}")
    options = ExperimentOptions(folder, tuple(models), seeds, seed_base, steps, diag_every, random_weights, device,
                                rebuild, {"companion": companion})
    run_dirs = resolve_target(spec.run)(options, registry)
    path = write_report(run_dirs, folder / "report", title=f"Experiment: {name}")
    click.echo(f"wrote {path}")


from .probes_cli import probes_group  # noqa: E402
cli.add_command(probes_group)

from .plan_cli import plan_command  # noqa: E402
cli.add_command(plan_command)

from .sweep_cli import sweep_group  # noqa: E402
cli.add_command(sweep_group)


def _wants_traceback(argv: list[str]) -> bool:
    return any(arg in ("-v", "--verbose") for arg in argv)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=args, prog_name="ent", standalone_mode=False)
    except EntError as exc:
        if _wants_traceback(args):
            raise
        click.echo(f"Error: {exc.one_line()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError" and exc.ctx is not None:  # `ent`, `ent sweep`: help, not an error
            click.echo(exc.ctx.get_help())
            sys.exit(0)
        hint = f" (see `ent {exc.ctx.info_name} --help`)" if exc.ctx and exc.ctx.parent else " (see `ent --help`)"
        click.echo(f"Error: {exc.format_message()}{hint}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"Error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
