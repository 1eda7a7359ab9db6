"""`ent probes list | show | export`: the registered probe sets and any probe file, with their design.

No torch import: probe sets are JSONL files read and validated by :mod:`ent_harness.probes`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .errors import EntError
from .probes import Probe, ProbeSetReport, load_probe_file, probe_set_report

probes_group = click.Group(
    "probes",
    help="List, inspect and export probe sets (the shipped sets, or any probes JSONL file).\n\n"
    "\b\n"
    "  ent probes list\n"
    "  ent probes show factorial-v1        (or: ent probes show my-probes.jsonl)\n"
    "  ent probes export factorial-v2 -o probes.jsonl",
)


def _registry() -> Any:
    from .plugin_manager import get_registry

    return get_registry()


def _load_named(registry: Any, name: str) -> list[Probe]:
    from .specs import resolve_target

    spec = registry.get("probe_set", name)
    return resolve_target(spec.probes)()


def _load_any(name_or_file: str) -> tuple[list[Probe], str]:
    """A probe file (a path that exists, or any name ending in .jsonl) or a registered probe set."""
    path = Path(name_or_file)
    if name_or_file.endswith(".jsonl") or path.is_file():
        return load_probe_file(path), f"file {path}"
    return _load_named(_registry(), name_or_file), f"probe set {name_or_file}"


def _concepts_text(report: ProbeSetReport) -> str:
    return " x ".join(f"{name} ({len(report.classes[name])})" for name in report.concepts)


@probes_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def list_command(as_json: bool) -> None:
    """List the registered probe sets with their size and design."""
    registry = _registry()
    rows = []
    for spec in registry.all("probe_set"):
        report = probe_set_report(_load_named(registry, spec.name))
        rows.append({"name": spec.name, "probes": report.n, "concepts": _concepts_text(report),
                     "balanced": report.balanced, "design_rank": report.design_rank, "r": report.r,
                     "plugin": spec.plugin, "description": spec.description})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="ent probe sets")
    for column in ("name", "probes", "concepts", "balanced", "design rank", "plugin"):
        table.add_column(column, overflow="fold")
    for row in rows:
        rank = f"{row['design_rank']} of r = {row['r']}"
        table.add_row(row["name"], str(row["probes"]), row["concepts"], "yes" if row["balanced"] else "no", rank,
                      row["plugin"])
    Console().print(table)


def _shorten(text: str | None, width: int = 90) -> str:
    if not text:
        return "(no text)"
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


@probes_group.command("show")
@click.argument("name_or_file")
@click.option("--json", "as_json", is_flag=True, help="Print the design as one JSON object.")
def show_command(name_or_file: str, as_json: bool) -> None:
    """Cell counts, examples, balance and design rank of a probe set or a probes JSONL file.

    A file is validated first (schema, duplicates, single-class concepts): a problem is one line naming the
    file line, and exit code 2.
    """
    probes, where = _load_any(name_or_file)
    report = probe_set_report(probes)
    if as_json:
        click.echo(json.dumps({"source": where, **report.to_dict()}))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{where}[/bold]: {report.n} probes; concepts {_concepts_text(report)}")
    for name in report.concepts:
        classes = ", ".join(f"{cls} {count}" for cls, count in report.classes[name].items())
        console.print(f"  {name}: {classes}")

    # cell counts: one row per combination of all concepts but the last, one column per class of the last
    *row_concepts, col_concept = report.concepts
    table = Table(title=f"probes per cell (columns: {col_concept})")
    for name in row_concepts:
        table.add_column(name)
    for cls in report.classes[col_concept]:
        table.add_column(cls, justify="right")
    rows: dict[tuple[str, ...], dict[str, int]] = {}
    for cell, count in report.cells.items():
        rows.setdefault(cell[:-1], {})[cell[-1]] = count
    for key, counts in rows.items():
        cells = [str(counts[cls]) if counts[cls] else "[red]0[/red]" for cls in report.classes[col_concept]]
        table.add_row(*key, *cells)
    console.print(table)

    example_concept = "domain" if "domain" in report.concepts else report.concepts[0]
    console.print(f"examples (two per {example_concept}):")
    for cls in report.classes[example_concept]:
        for probe in [p for p in probes if p.concepts[example_concept] == cls][:2]:
            console.print(f"  [{cls}] {_shorten(probe.text)}", markup=False, highlight=False)
    console.print(report.balance_line())
    console.print(report.design_rank_line())


@probes_group.command("export")
@click.argument("name")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="The JSONL file to write (the format `ent diagnose --probes` and `ent run --probes` read).")
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
def export_command(name: str, output: str, force: bool) -> None:
    """Write a registered probe set to a JSONL file (one {id, text, concepts} object per line)."""
    from .rundir import atomic_write_text

    probes = _load_named(_registry(), name)
    path = Path(output)
    if path.exists() and not force:
        raise EntError(f"'{path}' already exists", "pass --force to overwrite it, or choose another -o path")
    if not path.parent.exists():
        raise EntError(f"Folder '{path.parent}' does not exist", "create it first or choose another -o path")
    lines = []
    for probe in probes:
        record: dict[str, Any] = {"id": probe.id}
        if probe.text is not None:
            record["text"] = probe.text
        record["concepts"] = dict(probe.concepts)
        lines.append(json.dumps(record, ensure_ascii=False))
    atomic_write_text(path, "\n".join(lines) + "\n")
    report = probe_set_report(probes)
    click.echo(f"wrote {len(probes)} probes of {name} to {path} ({_concepts_text(report)}; "
               f"{'balanced' if report.balanced else 'unbalanced'}, design rank {report.design_rank} of r = {report.r})")
