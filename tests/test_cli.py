"""The command line: speed of the listing, broken plugins, one-line errors and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from conftest import REPO_ROOT, run_ent

BROKEN_PLUGIN_PATH = str(REPO_ROOT / "tests" / "fixtures" / "broken_plugin")


def _single_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


def test_list_plugins_json_lists_every_component_with_its_source() -> None:
    result = run_ent("list-plugins", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    keys = {"name", "kind", "plugin", "distribution", "version", "status"}
    assert all(keys <= set(row) for row in rows)
    names = {(row["kind"], row["name"]) for row in rows}
    assert ("model", "tiny-qwen2") in names and ("metric", "entanglement") in names
    assert all(row["status"] == "ok" for row in rows)


def test_list_plugins_kind_filter() -> None:
    rows = json.loads(run_ent("list-plugins", "--kind", "companion", "--json").stdout)
    assert rows and {row["kind"] for row in rows} == {"companion"}


def test_listing_never_imports_torch_and_answers_fast() -> None:
    code = (
        "import sys; from ent_harness.cli import plugin_rows; plugin_rows(None); "
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'numpy.linalg', 'scipy') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['numpy.linalg']" or out.strip() == "[]", out
    assert "torch" not in out
    best = min(_timed(["list-plugins"]) for _ in range(3))
    assert best < 1.5, f"ent list-plugins took {best:.2f} s"


def _timed(args: list[str]) -> float:
    start = time.perf_counter()
    result = run_ent(*args)
    assert result.returncode == 0, result.stderr
    return time.perf_counter() - start


def test_a_broken_installed_plugin_is_listed_and_nothing_else_breaks() -> None:
    env = {"PYTHONPATH": BROKEN_PLUGIN_PATH}
    result = run_ent("list-plugins", "--json", env=env)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    broken = [row for row in rows if row["status"] == "broken"]
    assert len(broken) == 1
    assert broken[0]["distribution"] == "ent-broken-fixture" and broken[0]["version"] == "0.0.1"
    assert "a_dependency_that_is_not_installed" in broken[0]["error"]
    assert any(row["name"] == "tiny-qwen2" and row["status"] == "ok" for row in rows)
    table = run_ent("list-plugins", env=env)
    assert table.returncode == 0 and "broken" in table.stdout
    assert run_ent("--help", env=env).returncode == 0


def test_unknown_model_exits_2_with_one_line() -> None:
    line = _single_error_line(run_ent("run", "--model", "no-such-model", "--companion", "nl"))
    assert "Unknown model 'no-such-model'" in line and "available" in line


def test_unknown_companion_suggests() -> None:
    line = _single_error_line(run_ent("run", "--model", "tiny-qwen2", "--companion", "nll"))
    assert "Unknown companion 'nll'" in line and "Did you mean: nl" in line


def test_bad_flag_values_exit_2() -> None:
    _single_error_line(run_ent("run", "--model", "tiny-qwen2", "--steps", "0"))
    _single_error_line(run_ent("run", "--model", "tiny-qwen2", "--companion-share", "1.5"))
    _single_error_line(run_ent("run", "--model", "tiny-qwen2", "--steps", "many"))
    _single_error_line(run_ent("run", "--no-such-flag"))


def test_config_file_errors_exit_2(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('model = "tiny-qwen2"\nstepz = 3\n')
    assert "unknown setting 'stepz'" in _single_error_line(run_ent("run", "--config", str(bad)))
    _single_error_line(run_ent("run", "--config", str(tmp_path / "missing.toml")))


def test_verbose_shows_the_traceback() -> None:
    result = run_ent("-v", "run", "--model", "no-such-model")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_non_empty_run_directory_is_refused(tmp_path) -> None:
    (tmp_path / "run.json").write_text("{}")
    line = _single_error_line(run_ent("run", "--model", "tiny-qwen2", "--out", str(tmp_path)))
    assert "--force" in line
    assert (tmp_path / "run.json").read_text() == "{}"


def test_a_group_without_a_subcommand_prints_its_help_not_an_error() -> None:
    for args in ([], ["probes"], ["sweep"]):
        result = run_ent(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert result.stdout.startswith("Usage: ent") and "Error" not in result.stderr, args
