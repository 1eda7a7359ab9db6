"""The README's commands are the ones CI and newcomers run; keep them in step with the code."""

from __future__ import annotations

import re

from conftest import REPO_ROOT


def _readme_commands() -> list[str]:
    readme = (REPO_ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(python3 -m venv[^\n]+)\n```", readme)


def test_readme_has_the_two_commands_and_ci_runs_the_second() -> None:
    commands = _readme_commands()
    assert len(commands) == 2, commands
    demo, tests = commands
    assert "ent run --model tiny-qwen2 --companion nl" in demo
    assert tests.endswith("pytest -q")
    ci_lines = [line.strip() for line in (REPO_ROOT / ".ci" / "run").read_text().splitlines()]
    for part in tests.split(" && "):
        assert part in ci_lines, f"CI does not run README step: {part}"


def test_readme_documents_every_cli_command() -> None:
    from ent_harness.cli import cli

    readme = (REPO_ROOT / "README.md").read_text()
    for name in cli.commands:
        assert f"ent {name}" in readme, f"`ent {name}` is not in the README"
