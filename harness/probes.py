"""Probes: labelled texts whose terminal-layer activations the metrics read.

A probe file is JSON Lines: one object per probe with ``text`` (needed to extract activations; optional
when activations are supplied) and ``concepts`` (an object mapping each concept name to the probe's class
label), optionally ``id``. Every problem is reported as one line naming the file line and field.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputFileError

ALLOWED_FIELDS = frozenset({"id", "text", "concepts"})


@dataclass(frozen=True)
class Probe:
    """One labelled probe."""

    id: str
    concepts: dict[str, str] = field(hash=False)
    text: str | None = None


def parse_probe_records(records: list[tuple[int, object]], source: str, require_text: bool) -> list[Probe]:
    """Validate ``(line_number, decoded_json)`` pairs into probes; raise one clear line per problem."""
    if not records:
        raise InputFileError(f"{source}: no probes", "give one JSON object per line")
    probes: list[Probe] = []
    concept_names: tuple[str, ...] | None = None
    seen_ids: dict[str, int] = {}
    seen_texts: dict[str, int] = {}
    for line_no, obj in records:
        where = f"{source}:{line_no}"
        if not isinstance(obj, dict):
            raise InputFileError(f"{where}: expected a JSON object", "write one object per line")
        unknown = sorted(set(obj) - ALLOWED_FIELDS)
        if unknown:
            raise InputFileError(
                f"{where}: unknown field '{unknown[0]}'", "allowed fields are id, text and concepts"
            )
        concepts = obj.get("concepts")
        if not isinstance(concepts, dict) or not concepts:
            raise InputFileError(
                f"{where}: field 'concepts' is missing or empty",
                'give an object such as {"domain": "code", "register": "formal"}',
            )
        for concept in concepts:
            if not isinstance(concept, str) or not concept.strip():
                raise InputFileError(f"{where}: a concept name is empty", "name every concept, e.g. \"domain\"")
        names = tuple(sorted(concepts))
        if concept_names is None:
            concept_names = names
        elif names != concept_names:
            missing = sorted(set(concept_names) - set(names))
            extra = sorted(set(names) - set(concept_names))
            detail = f"missing label for concept '{missing[0]}'" if missing else f"unexpected concept '{extra[0]}'"
            raise InputFileError(f"{where}: {detail}", "every probe must label the same concepts")
        for concept, label in concepts.items():
            if label is None or (isinstance(label, str) and not label.strip()):
                raise InputFileError(
                    f"{where}: missing label for concept '{concept}'", "give each concept a non-empty string label"
                )
            if not isinstance(label, (str, int)) or isinstance(label, bool):
                raise InputFileError(
                    f"{where}: concept '{concept}' has a {type(label).__name__} label ({json.dumps(label)})",
                    "give each concept a non-empty string label",
                )
        text = obj.get("text")
        if text is not None and (not isinstance(text, str) or not text.strip()):
            raise InputFileError(f"{where}: field 'text' must be a non-empty string", "write the probe's text or "
                                 "leave the field out")
        if require_text and text is None:
            raise InputFileError(f"{where}: field 'text' is missing", "probes used on a model need their text")
        probe_id = obj.get("id", f"probe-{len(probes)}")
        if not isinstance(probe_id, (str, int)):
            raise InputFileError(f"{where}: field 'id' must be a string")
        probe_id = str(probe_id)
        if probe_id in seen_ids:
            raise InputFileError(f"{where}: duplicate id '{probe_id}' (first on line {seen_ids[probe_id]})")
        seen_ids[probe_id] = line_no
        if text is not None:
            if text in seen_texts:
                raise InputFileError(f"{where}: duplicate text (first on line {seen_texts[text]})")
            seen_texts[text] = line_no
        probes.append(Probe(id=probe_id, concepts={k: str(v) for k, v in concepts.items()}, text=text))
    assert concept_names is not None
    first_line, last_line = records[0][0], records[-1][0]
    for concept in concept_names:
        classes = Counter(p.concepts[concept] for p in probes)
        if len(classes) < 2:
            only = next(iter(classes))
            raise InputFileError(
                f"{source}:{first_line}-{last_line}: concept '{concept}' has a single class ('{only}') on every line",
                "every concept needs at least two classes (a concept with one label carries no information)",
            )
    return probes


def load_probe_file(path: str | Path, require_text: bool = False) -> list[Probe]:
    """Read and validate a probe JSONL file."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"Probe file '{path}' does not exist", "check the path")
    records: list[tuple[int, object]] = []
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append((line_no, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise InputFileError(f"{path}:{line_no}: not valid JSON ({exc.msg})") from None
    return parse_probe_records(records, str(path), require_text=require_text)


def probe_labels(probes: list[Probe]) -> list[dict[str, str]]:
    """The concept labels of each probe, in order (the input of the geometry core)."""
    return [dict(p.concepts) for p in probes]


@dataclass(frozen=True)
class ProbeSetReport:
    """The design of a probe set: classes per concept, factorial cell counts, balance and design rank.

    ``cells`` maps every cell of the full factorial design (one class per concept, in ``concepts`` order)
    to its probe count, zero for empty cells. ``design_rank`` is the rank of the centred one-hot label
    matrix; ``r`` = sum over concepts of (classes - 1) is its value for a full factorial design, and a lower
    rank means the labels are confounded (the metrics flag this as ``design_rank_deficit``).
    """

    n: int
    concepts: tuple[str, ...]
    classes: dict[str, dict[str, int]]
    cells: dict[tuple[str, ...], int]
    design_rank: int
    r: int

    @property
    def balanced(self) -> bool:
        counts = list(self.cells.values())
        return bool(counts) and min(counts) > 0 and min(counts) == max(counts)

    @property
    def empty_cells(self) -> int:
        return sum(1 for count in self.cells.values() if count == 0)

    @property
    def full_rank(self) -> bool:
        return self.design_rank >= self.r

    def balance_line(self) -> str:
        counts = list(self.cells.values())
        if self.balanced:
            return f"balanced: yes, every one of the {len(counts)} cells holds {counts[0]} probes"
        nonempty = [c for c in counts if c]
        detail = f"cell counts range from {min(nonempty)} to {max(nonempty)}"
        if self.empty_cells:
            detail += f", {self.empty_cells} of {len(counts)} cells are empty"
        return f"balanced: no, {detail} (the metrics flag unbalanced_design)"

    def design_rank_line(self) -> str:
        if self.full_rank:
            return f"design rank: {self.design_rank} = r (full: the concepts can be told apart)"
        return (f"design rank: {self.design_rank} < r = {self.r} (confounded labels or missing cells; the metrics "
                f"flag design_rank_deficit)")

    def to_dict(self) -> dict[str, object]:
        return {
            "n": self.n,
            "concepts": {name: dict(self.classes[name]) for name in self.concepts},
            "cells": [{**dict(zip(self.concepts, cell)), "probes": count} for cell, count in self.cells.items()],
            "balanced": self.balanced,
            "empty_cells": self.empty_cells,
            "design_rank": self.design_rank,
            "r": self.r,
        }


def probe_set_report(probes: list[Probe]) -> ProbeSetReport:
    """Cell counts, balance and design rank of validated probes (concepts in first-probe order)."""
    import itertools

    import numpy as np

    if not probes:
        raise InputFileError("no probes", "give one JSON object per line")
    concepts = tuple(probes[0].concepts)
    classes = {name: dict(sorted(Counter(p.concepts[name] for p in probes).items())) for name in concepts}
    counts = Counter(tuple(p.concepts[name] for name in concepts) for p in probes)
    cells = {cell: counts.get(cell, 0) for cell in itertools.product(*(classes[name] for name in concepts))}
    blocks = []
    for name in concepts:
        labels = [p.concepts[name] for p in probes]
        block = np.array([[label == cls for cls in classes[name]] for label in labels], dtype=float)
        blocks.append(block - block.mean(axis=0))
    design = np.hstack(blocks)
    rank = int(np.linalg.matrix_rank(design)) if design.size else 0
    r = sum(len(classes[name]) - 1 for name in concepts)
    return ProbeSetReport(n=len(probes), concepts=concepts, classes=classes, cells=cells, design_rank=rank, r=r)
