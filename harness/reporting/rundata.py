"""One run directory as data. run.json needs only ``model``, ``companion`` and ``seed``; diagnostics.jsonl
only ``step`` and ``ei`` per record (other metrics optional), so results of other tools can be brought in."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputFileError

REQUIRED_RUN_KEYS = ("model", "companion", "seed")


@dataclass
class RunData:
    run_dir: Path
    model: str
    companion: str
    seed: Any
    status: str | None
    records: list[dict[str, Any]]
    events: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def condition(self) -> str:
        return f"{self.model} + {self.companion}"

    @property
    def steps(self) -> list[int]:
        return [int(r["step"]) for r in self.records]

    def series(self, key: str) -> list[Any]:
        return [r.get(key) for r in self.records]

    def at(self, step: int) -> dict[str, Any] | None:
        return next((r for r in self.records if int(r["step"]) == step), None)

    @property
    def first(self) -> dict[str, Any]:
        return self.records[0]

    @property
    def last(self) -> dict[str, Any]:
        return self.records[-1]


def load_run(run_dir: str | Path) -> RunData:
    """Read and check one run directory; one clear line per problem."""
    run_dir = Path(run_dir)
    run_file, diag_file = run_dir / "run.json", run_dir / "diagnostics.jsonl"
    if not run_file.is_file():
        raise InputFileError(f"'{run_dir}' has no run.json", "a run directory needs run.json and diagnostics.jsonl")
    try:
        info = json.loads(run_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputFileError(f"{run_file}: not valid JSON ({exc.msg})") from None
    missing = [k for k in REQUIRED_RUN_KEYS if k not in info]
    if missing:
        raise InputFileError(f"{run_file}: missing key '{missing[0]}'", "run.json needs model, companion and seed")
    if not diag_file.is_file():
        raise InputFileError(f"'{run_dir}' has no diagnostics.jsonl")
    records: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for line_no, line in enumerate(diag_file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputFileError(f"{diag_file}:{line_no}: not valid JSON ({exc.msg})") from None
        if "event" in record:
            events.append(record)
            continue
        if "step" not in record or "ei" not in record:
            field_name = "step" if "step" not in record else "ei"
            raise InputFileError(f"{diag_file}:{line_no}: record without '{field_name}'",
                                 "each diagnostic record needs step and ei")
        records.append(record)
    if not records:
        raise InputFileError(f"{diag_file}: no diagnostic records")
    records.sort(key=lambda r: int(r["step"]))
    return RunData(run_dir, str(info["model"]), str(info["companion"]), info["seed"], info.get("status"),
                   records, events, info)
