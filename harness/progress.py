"""A run with a rich progress bar (steps, loss, last EI) on stderr."""

from __future__ import annotations

from typing import Any


def run_with_progress(prepared: Any) -> dict[str, Any]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from .run import execute_run

    config, run_dir = prepared.config, prepared.run_dir
    console = Console(stderr=True)
    verb = "resuming" if prepared.record.get("status") == "resuming" else "ent run"
    console.print(f"[bold]{verb}[/bold] {config.model} + {config.companion}, seed {config.seed} -> {run_dir}")
    if config.gpus > 1:
        from .distributed import check_gpus, launch
        from .run import read_run_record

        check_gpus(config.gpus, config.device)
        console.print(f"data-parallel over {config.gpus} {'processes' if config.device == 'cpu' else 'GPUs'}")
        code = launch(prepared, config.gpus)
        record = read_run_record(run_dir)
        if code != 0 and record.get("status") in ("starting", "running", "resuming"):
            # a worker died without its own record of it (killed, out of memory, NCCL failure)
            from .report import write_run_report
            from .rundir import RUN_FILE, write_json

            record.update({"status": "failed", "error": f"a data-parallel worker exited with code {code}"})
            write_json(run_dir / RUN_FILE, record)
            write_run_report(run_dir, record)
        console.print(f"status: [bold]{record.get('status')}[/bold]; report: {run_dir / 'report.md'}")
        return record
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}  EI {task.fields[ei]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("loading model", total=config.steps, loss="—", ei="—")

        def on_progress(step: int, values: dict[str, Any]) -> None:
            loss = values.get("train_loss")
            fields: dict[str, Any] = {"loss": f"{loss:.3f}" if isinstance(loss, float) else "—"}
            if "ei" in values:
                ei = values.get("ei")
                fields["ei"] = f"{ei:.3f}" if isinstance(ei, float) else "—"
            progress.update(task, completed=step, description="training", **fields)

        record = execute_run(prepared, on_progress=on_progress)
    console.print(f"status: [bold]{record['status']}[/bold]; report: {run_dir / 'report.md'}")
    return record
