"""Independent verification of `ent diagnose` against a plain reference of metrics spec sections 1-5.

The reference (``independent_reference.py``) and its synthetic data generator were written from the spec
alone; nothing here imports the project's geometry or metric code. The CLI is run as a subprocess
(``python -m ent_harness diagnose --activations ACTS --probes PROBES.jsonl --json``), its stdout parsed as
one JSON object and compared with the reference on the same files.

Seeds are fresh on every run (printed in every failure message); set ENT_INDEP_SEEDS="s1,s2" to replay.
CLI calls are cached per data set, so the whole module starts the CLI about 11 times.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import independent_reference as ref  # noqa: E402

N_PER_CELL = 8  # n = 32 cells x 8 = 256
D = 256
NOISE_SD = 0.003
BLOCK_SCALES = (3.0, 1.0, 0.3)
R = 7
REL_TOL = 1e-5

REQUIRED_KEYS = (
    "ei ei_sd ei_per_concept carry_fraction damage cross_damage spectrum top_sv sv_ratio concentration "
    "effective_rank design_rank v_purity sigma margin margin_normalized accuracy ei_null flags"
).split()


def _seeds() -> list[int]:
    env = os.environ.get("ENT_INDEP_SEEDS")
    if env:
        return [int(s) for s in env.split(",") if s.strip()]
    return [secrets.randbelow(2**31) for _ in range(2)]


SEEDS = _seeds()
print(f"[independent diagnose tests] seeds = {SEEDS} (replay with ENT_INDEP_SEEDS={','.join(map(str, SEEDS))})")


# --------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------
def write_probes(path: Path, labels: list[dict[str, str]], drop_concept_on_line: int | None = None) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for i, lab in enumerate(labels):
            concepts = {"domain": lab["domain"], "register": lab["register"], "shape": lab["shape"]}
            if drop_concept_on_line is not None and i + 1 == drop_concept_on_line:
                del concepts["shape"]
            handle.write(json.dumps({"id": f"p{i:04d}", "concepts": concepts}) + "\n")


def write_acts(path: Path, X: np.ndarray, npz_key: str = "X") -> None:
    if path.suffix == ".npz":
        np.savez(path, **{npz_key: X})
    else:
        np.save(path, X)


_CLI_STATE: dict[str, str] = {}


def run_diagnose(acts: Path, probes: Path, cwd: Path) -> subprocess.CompletedProcess:
    """Run the CLI once; skip (not fail) while the package or its `diagnose` command does not exist yet."""
    if "unavailable" in _CLI_STATE:
        pytest.skip(_CLI_STATE["unavailable"])
    cmd = [sys.executable, "-m", "ent_harness", "diagnose", "--activations", str(acts), "--probes", str(probes), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=600)
    if proc.returncode != 0:
        if "No module named ent_harness" in proc.stderr or "ModuleNotFoundError" in proc.stderr and "ent_harness" in proc.stderr:
            _CLI_STATE["unavailable"] = "`python -m ent_harness` is not available yet (ModuleNotFoundError)"
        elif "No such command" in proc.stderr and "diagnose" in proc.stderr:
            _CLI_STATE["unavailable"] = "the CLI exists but has no `diagnose` command yet"
        if "unavailable" in _CLI_STATE:
            pytest.skip(_CLI_STATE["unavailable"])
    return proc


def parse_json(proc: subprocess.CompletedProcess, what: str) -> dict:
    assert proc.returncode == 0, f"{what}: exit {proc.returncode}, stderr:\n{proc.stderr[-3000:]}"
    try:
        out = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"{what}: stdout is not one JSON object ({exc}); stdout starts:\n{proc.stdout[:1000]}")
    assert isinstance(out, dict), f"{what}: stdout JSON is a {type(out).__name__}, not an object"
    return out


def rel_close(a: float, b: float, tol: float = REL_TOL) -> bool:
    a, b = float(a), float(b)
    return abs(a - b) <= tol * max(abs(a), abs(b)) or a == b


def compare_with_reference(out: dict, mine: dict, n: int, what: str) -> list[str]:
    """Every disagreement between the CLI's JSON and the reference, as readable lines."""
    problems: list[str] = []
    for key in ("v_purity", "margin", "margin_normalized"):
        if key not in out:
            problems.append(f"{key}: missing from JSON")
        elif not rel_close(out[key], mine[key]):
            problems.append(f"{key}: reference {mine[key]!r} vs ent {out[key]!r}")
    spec = out.get("spectrum")
    if not isinstance(spec, list) or len(spec) != R:
        problems.append(f"spectrum: expected a list of {R} values, ent gave {spec!r}")
    else:
        for i, (a, b) in enumerate(zip(mine["spectrum"], spec)):
            if not rel_close(a, b):
                problems.append(f"spectrum[{i}]: reference {a!r} vs ent {b!r}")
    acc = out.get("accuracy")
    if not isinstance(acc, dict):
        problems.append(f"accuracy: expected an object keyed by concept, ent gave {acc!r}")
    else:
        for name, value in mine["accuracy"].items():
            theirs = acc.get(name)
            if theirs is None or abs(float(theirs) - value) > 1e-12:
                problems.append(
                    f"accuracy[{name}]: reference {value!r} ({mine['correct_counts'][name]}/{n} correct) vs ent {theirs!r}"
                )
    return [f"{what}: {p}" for p in problems]


# --------------------------------------------------------------------------------------------------------
# data sets and cached CLI runs
# --------------------------------------------------------------------------------------------------------
def _datasets() -> dict[str, tuple[str, int, str]]:
    """name -> (structure, seed, activation file suffix); the second block seed goes through .npz."""
    sets = {}
    for i, seed in enumerate(SEEDS):
        sets[f"block-seed{seed}"] = ("block", seed, ".npz" if i == 1 else ".npy")
    for seed in SEEDS:
        sets[f"entangled-seed{seed}"] = ("entangled", seed, ".npy")
    return sets


DATASETS = _datasets()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("independent_diagnose")


_CACHE: dict[str, dict] = {}


def dataset_result(name: str, workdir: Path) -> dict:
    """Generate, write, run the CLI and the reference once per data set."""
    if name in _CACHE:
        if "skip" in _CACHE[name]:
            pytest.skip(_CACHE[name]["skip"])
        if "error" in _CACHE[name]:
            pytest.fail(_CACHE[name]["error"])
        return _CACHE[name]
    structure, seed, suffix = DATASETS[name]
    X, labels = ref.generate(structure, seed, per_cell=N_PER_CELL, d=D, noise_sd=NOISE_SD, scales=BLOCK_SCALES)
    acts, probes = workdir / f"{name}{suffix}", workdir / f"{name}.jsonl"
    write_acts(acts, X)
    write_probes(probes, labels)
    try:
        proc = run_diagnose(acts, probes, workdir)
    except pytest.skip.Exception as exc:
        _CACHE[name] = {"skip": str(exc)}
        raise
    entry = {"proc": proc, "X": X, "labels": labels, "seed": seed, "structure": structure}
    try:
        entry["out"] = parse_json(proc, f"{name} (seed {seed})")
    except AssertionError as exc:  # cached, so that a failing CLI is not started again for every test
        _CACHE[name] = {"error": str(exc)}
        raise
    entry["ref"] = ref.reference_diagnose(X, labels)
    _CACHE[name] = entry
    return entry


# --------------------------------------------------------------------------------------------------------
# 0. the reference on its own (no CLI needed)
# --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_reference_is_sound(seed):
    X, labels = ref.generate("block", seed, per_cell=N_PER_CELL, d=D, noise_sd=NOISE_SD, scales=BLOCK_SCALES)
    a = ref.reference_diagnose(X, labels)
    b = ref.reference_diagnose(X, labels, primal=True, loo="closed")
    tag = f"block seed {seed}"
    assert len(labels) == 256 and X.shape == (256, D), tag
    assert a["effective_rank"] == R and a["design_rank"] == R, tag
    assert a["v_purity"] > 0.9, f"{tag}: reference V-purity {a['v_purity']} (spec 9.1 wants > 0.9)"
    # dual == primal; refit-n-times LOO == the spec's closed form
    assert np.allclose(a["W"], b["W"], rtol=0, atol=1e-10 * np.abs(a["W"]).max()), tag
    assert np.allclose(a["loo_predictions"], b["loo_predictions"], rtol=0, atol=1e-9), tag
    assert a["accuracy"] == b["accuracy"], tag
    assert all(v == 1.0 for v in a["accuracy"].values()), f"{tag}: {a['accuracy']}"
    # block-diagonal sigma: each direction carries one concept (the others are at noise level)
    share = a["sigma"] / a["sigma"].sum(axis=1, keepdims=True)
    assert (share.max(axis=1) > 0.99).all(), f"{tag}: sigma rows {a['sigma']}"
    # scale invariance of the reference (spec 9.4): raw margin scales with c^2, the rest unchanged
    c = 7.5
    s = ref.reference_diagnose(c * X, labels, loo="closed")
    assert rel_close(s["v_purity"], a["v_purity"], 1e-8)
    assert rel_close(s["margin_normalized"], a["margin_normalized"], 1e-6)
    assert rel_close(s["margin"], c**2 * a["margin"], 1e-6)
    assert s["accuracy"] == a["accuracy"]
    # entangled data: every direction mixes concepts, so V-purity is well below the block value
    Xe, le = ref.generate("entangled", seed, per_cell=N_PER_CELL, d=D, noise_sd=NOISE_SD)
    e = ref.reference_diagnose(Xe, le, loo="closed")
    assert e["effective_rank"] == R and e["v_purity"] < 0.85, f"entangled seed {seed}: {e['v_purity']}"
    share_e = e["sigma"] / e["sigma"].sum(axis=1, keepdims=True)
    assert (share_e.max(axis=1) < 0.99).all(), f"entangled seed {seed}: sigma rows {e['sigma']}"


def test_reference_dual_equals_primal_when_d_much_larger_than_n():
    rng = np.random.default_rng(SEEDS[0])
    X, labels = ref.generate("entangled", SEEDS[0], per_cell=2, d=1024, noise_sd=NOISE_SD)
    X = X + 0.01 * rng.standard_normal(X.shape)
    a = ref.reference_diagnose(X, labels, loo="closed")
    b = ref.reference_diagnose(X, labels, primal=True, loo="closed")
    assert np.allclose(a["spectrum"], b["spectrum"], rtol=1e-8), f"seed {SEEDS[0]}"
    assert rel_close(a["v_purity"], b["v_purity"], 1e-8), f"seed {SEEDS[0]}"


# --------------------------------------------------------------------------------------------------------
# 1. the CLI on good data
# --------------------------------------------------------------------------------------------------------
def test_json_has_required_keys(workdir):
    name = next(iter(DATASETS))
    out = dataset_result(name, workdir)["out"]
    missing = [k for k in REQUIRED_KEYS if k not in out]
    assert not missing, f"{name}: JSON lacks keys {missing}; has {sorted(out)}"


def test_block_diagonal_ei_small(workdir):
    names = [n for n in DATASETS if n.startswith("block")]
    values = [float(dataset_result(n, workdir)["out"]["ei"]) for n in names]
    mean = float(np.mean(values))
    assert mean <= 0.15, f"block-diagonal EI mean {mean} > 0.15; per seed {dict(zip(names, values))}"


@pytest.mark.parametrize("name", [n for n in DATASETS if n.startswith("entangled")])
def test_entangled_ei_four_thirds(name, workdir):
    out = dataset_result(name, workdir)["out"]
    assert abs(float(out["ei"]) - 4 / 3) <= 0.05, (
        f"{name}: entangled EI {out['ei']} not within 0.05 of 4/3 (ei_per_concept {out.get('ei_per_concept')}, "
        f"effective_rank {out.get('effective_rank')}, flags {out.get('flags')})"
    )


@pytest.mark.parametrize("name", list(DATASETS))
def test_matches_reference(name, workdir):
    res = dataset_result(name, workdir)
    problems = compare_with_reference(res["out"], res["ref"], len(res["labels"]), name)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", list(DATASETS))
def test_other_spectrum_quantities_match_reference(name, workdir):
    """Spec section 2's derived scalars (not in the brief's list, but fully defined by the spec)."""
    res = dataset_result(name, workdir)
    out, mine = res["out"], res["ref"]
    problems = []
    for key in ("effective_rank", "design_rank"):
        if out.get(key) != mine[key]:
            problems.append(f"{key}: reference {mine[key]!r} vs ent {out.get(key)!r}")
    for key in ("top_sv", "sv_ratio", "concentration"):
        if key not in out or not rel_close(out[key], mine[key]):
            problems.append(f"{key}: reference {mine[key]!r} vs ent {out.get(key)!r}")
    assert not problems, "\n".join(f"{name}: {p}" for p in problems)


def _sigma_as_matrix(sigma, names: list[str]) -> np.ndarray | None:
    """Accept the r_eff x k sigma matrix as a list of rows (concepts in sorted order) or keyed by concept."""
    if isinstance(sigma, dict):
        if "values" in sigma and isinstance(sigma["values"], list):
            sigma = sigma["values"]
        elif all(name in sigma for name in names):
            return np.array([sigma[name] for name in names], dtype=float).T
        else:
            return None
    try:
        return np.array(sigma, dtype=float)
    except (TypeError, ValueError):
        return None


@pytest.mark.parametrize("name", list(DATASETS))
def test_sigma_matrix_matches_reference(name, workdir):
    res = dataset_result(name, workdir)
    mine = res["ref"]["sigma"]
    theirs = _sigma_as_matrix(res["out"].get("sigma"), res["ref"]["concepts"])
    if theirs is None or theirs.shape != mine.shape:
        pytest.fail(f"{name}: sigma has an unexpected form {res['out'].get('sigma')!r}; reference shape {mine.shape}")
    bad = [
        f"sigma[{i}][{j}]: reference {mine[i, j]!r} vs ent {theirs[i, j]!r}"
        for i in range(mine.shape[0])
        for j in range(mine.shape[1])
        if not rel_close(mine[i, j], theirs[i, j])
    ]
    assert not bad, f"{name} (concept order {res['ref']['concepts']}):\n" + "\n".join(bad)


# --------------------------------------------------------------------------------------------------------
# 2. unbalanced design: still runs, flags it
# --------------------------------------------------------------------------------------------------------
_UNBALANCED: dict[str, dict] = {}


def unbalanced_result(workdir: Path) -> dict:
    if "res" in _UNBALANCED:
        return _UNBALANCED["res"]
    if "error" in _UNBALANCED:
        pytest.fail(_UNBALANCED["error"])
    seed = SEEDS[0]
    X, labels = ref.generate("block", seed, per_cell=N_PER_CELL, d=D, noise_sd=NOISE_SD, scales=BLOCK_SCALES)
    drop = set(np.random.default_rng(seed + 1).choice(len(labels), size=5, replace=False).tolist())
    keep = [i for i in range(len(labels)) if i not in drop]
    X, labels = X[keep], [labels[i] for i in keep]
    acts, probes = workdir / "unbalanced.npy", workdir / "unbalanced.jsonl"
    write_acts(acts, X)
    write_probes(probes, labels)
    proc = run_diagnose(acts, probes, workdir)
    res = {"proc": proc, "X": X, "labels": labels, "seed": seed, "dropped": sorted(drop)}
    try:
        res["out"] = parse_json(proc, f"unbalanced (seed {seed}, dropped rows {sorted(drop)})")
    except AssertionError as exc:
        _UNBALANCED["error"] = str(exc)
        raise
    _UNBALANCED["res"] = res
    return res


def test_unbalanced_design_runs_and_is_flagged(workdir):
    res = unbalanced_result(workdir)
    flags = res["out"].get("flags")
    assert isinstance(flags, list), f"seed {res['seed']}: flags is {flags!r}"
    texts = [json.dumps(f) if not isinstance(f, str) else f for f in flags]
    assert any("unbalanced" in t.lower() for t in texts), f"seed {res['seed']}: no 'unbalanced' flag in {flags!r}"


def test_unbalanced_design_matches_reference(workdir):
    """Sections 1-5 are defined for any design; the reference follows them literally on 251 probes."""
    res = unbalanced_result(workdir)
    mine = ref.reference_diagnose(res["X"], res["labels"])
    problems = compare_with_reference(res["out"], mine, len(res["labels"]), f"unbalanced seed {res['seed']}")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------------------------------------
# 3. bad input: exit 2, exactly one stderr line naming the problem, no traceback
# --------------------------------------------------------------------------------------------------------
def _bad_case(case: str, workdir: Path) -> tuple[Path, Path, tuple[str, ...]]:
    """Write one broken input; return (acts, probes, words of which the message must contain one)."""
    seed = SEEDS[0]
    X, labels = ref.generate("block", seed, per_cell=N_PER_CELL, d=D, noise_sd=NOISE_SD, scales=BLOCK_SCALES)
    base = workdir / f"bad-{case}"
    acts, probes = base.with_suffix(".npy"), base.with_suffix(".jsonl")
    if case == "row_mismatch":
        write_acts(acts, X[:250])
        write_probes(probes, labels)
        return acts, probes, ("250", "row", "mismatch", "match")
    if case == "nan":
        X = X.copy()
        X[17, 3] = np.nan
        write_acts(acts, X)
        write_probes(probes, labels)
        return acts, probes, ("nan", "finite")
    if case == "single_class":
        write_acts(acts, X)
        write_probes(probes, [dict(lab, register="formal") for lab in labels])
        return acts, probes, ("register", "single", "one class")
    if case == "missing_label":
        write_acts(acts, X)
        write_probes(probes, labels, drop_concept_on_line=3)
        return acts, probes, (":3",)
    if case == "empty_probes":
        write_acts(acts, X)
        probes.write_text("", encoding="utf-8")
        return acts, probes, ("empty", "no probe")
    if case == "npz_without_X":
        acts = base.with_suffix(".npz")
        write_acts(acts, X, npz_key="acts")
        write_probes(probes, labels)
        return acts, probes, ("'x'", '"x"', " x ", "key")
    raise ValueError(case)


@pytest.mark.parametrize(
    "case", ["row_mismatch", "nan", "single_class", "missing_label", "empty_probes", "npz_without_X"]
)
def test_bad_input_exits_2_with_one_line(case, workdir):
    acts, probes, words = _bad_case(case, workdir)
    proc = run_diagnose(acts, probes, workdir)
    lines = proc.stderr.strip().splitlines()
    where = f"{case} (seed {SEEDS[0]}): exit {proc.returncode}, stderr {proc.stderr!r}"
    assert proc.returncode == 2, where
    assert "Traceback" not in proc.stderr, where
    assert len(lines) == 1, f"{where}: expected exactly one stderr line, got {len(lines)}"
    msg = lines[0].lower()
    if case == "missing_label":
        assert ":3" in lines[0], f"{where}: the line number (':3') is not named"
    else:
        assert any(w in msg for w in words), f"{where}: the message names none of {words}"
