"""Shared test set-up: no network, a private cache for random-weight checkpoints."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def _ent_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["ENT_CACHE"] = str(tmp_path_factory.mktemp("ent-cache"))


def ent_command() -> list[str]:
    """The installed console script, or the module as a fallback."""
    script = shutil.which("ent")
    return [script] if script else [sys.executable, "-m", "ent_harness"]


def run_ent(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*ent_command(), *args], capture_output=True, text=True, env=full_env, timeout=timeout)


@pytest.fixture
def run_ent_cli():
    return run_ent


def gpu_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if gpu_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


REPO_ROOT = Path(__file__).resolve().parents[1]
