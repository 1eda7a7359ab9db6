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


@pytest.fixture(scope="module")
def one_blas_thread():
    """One BLAS thread (``pytestmark = pytest.mark.usefixtures("one_blas_thread")``) for small-matrix tests: BLAS threads only add overhead there, and
    oversubscribe a busy 2-core machine (6x slower)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(1):
        yield


def fresh_seeds(count: int) -> list[int]:
    """Fresh random seeds each run (replay a failure with ENT_GEOMETRY_SEEDS=s1,s2,...)."""
    import numpy as np

    env = os.environ.get("ENT_GEOMETRY_SEEDS")
    if env:
        seeds = [int(s) for s in env.split(",") if s.strip()]
        return (seeds * count)[:count]
    return [int(np.random.SeedSequence().entropy % (2**32)) for _ in range(count)]
