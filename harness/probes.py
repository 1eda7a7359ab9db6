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
        names = tuple(sorted(concepts))
        if concept_names is None:
            concept_names = names
        elif names != concept_names:
            missing = sorted(set(concept_names) - set(names))
            extra = sorted(set(names) - set(concept_names))
            detail = f"missing label for concept '{missing[0]}'" if missing else f"unexpected concept '{extra[0]}'"
            raise InputFileError(f"{where}: {detail}", "every probe must label the same concepts")
        for concept, label in concepts.items():
            if not isinstance(label, (str, int)) or isinstance(label, bool) or str(label).strip() == "":
                raise InputFileError(
                    f"{where}: concept '{concept}' has no label", "give each concept a non-empty string label"
                )
        text = obj.get("text")
        if text is not None and (not isinstance(text, str) or not text.strip()):
            raise InputFileError(f"{where}: field 'text' must be a non-empty string")
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
    for concept in concept_names:
        classes = Counter(p.concepts[concept] for p in probes)
        if len(classes) < 2:
            only = next(iter(classes))
            raise InputFileError(
                f"{source}: concept '{concept}' has a single class ('{only}')",
                "every concept needs at least two classes",
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
