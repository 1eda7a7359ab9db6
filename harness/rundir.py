"""The run directory: atomic writes, the JSONL diagnostics log and verified adapter saves.

Nothing a user started is lost: every file is written to a temporary name, flushed, fsynced and renamed
into place; an adapter is written to a temporary folder, reloaded and checked (finite, expected tensors)
before it is renamed to ``adapters/step-N``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import RunDirectoryError

RUN_FILE = "run.json"
DIAGNOSTICS_FILE = "diagnostics.jsonl"
ADAPTERS_DIR = "adapters"


def to_jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars/arrays converted, NaN and infinities written as null."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return to_jsonable(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(to_jsonable(data), indent=2, sort_keys=False) + "\n")


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(to_jsonable(record)) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            records.append(json.loads(line))
    return records


def prepare_run_dir(path: Path, force: bool) -> None:
    """Create the run directory; refuse to write into a non-empty one unless ``force``."""
    if path.exists() and not path.is_dir():
        raise RunDirectoryError(f"'{path}' exists and is not a directory", "choose another --out")
    if path.is_dir() and any(path.iterdir()):
        if not force:
            raise RunDirectoryError(
                f"Run directory '{path}' already holds files", "pass --force to overwrite it or choose another --out"
            )
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / ADAPTERS_DIR).mkdir(exist_ok=True)


def adapter_is_finite(model: Any) -> bool:
    """Cheap check of every trainable (adapter) tensor for NaN or infinity."""
    import torch

    for param in model.parameters():
        if param.requires_grad and not torch.isfinite(param.detach()).all():
            return False
    return True


def verify_adapter_dir(folder: Path, expected_tensors: int) -> None:
    """Reload a saved adapter's tensors and check they are all finite and all there."""
    import torch
    from safetensors.torch import load_file

    weights = folder / "adapter_model.safetensors"
    if not weights.is_file() or not (folder / "adapter_config.json").is_file():
        raise OSError(f"adapter save in {folder} is incomplete")
    tensors = load_file(str(weights))
    if len(tensors) != expected_tensors:
        raise OSError(f"adapter save has {len(tensors)} tensors, expected {expected_tensors}")
    for name, tensor in tensors.items():
        if not torch.isfinite(tensor).all():
            raise OSError(f"adapter tensor {name} is not finite")


@contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``final``; on success fsync its files and rename it to ``final``.

    On any error the temporary folder is removed and ``final`` (if it existed) is left as it was, so a
    folder under its final name is always complete.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield tmp
        for path in tmp.iterdir():
            if path.is_file():
                with path.open("rb") as handle:
                    os.fsync(handle.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def trainable_tensor_count(model: Any) -> int:
    return sum(1 for _, p in model.named_parameters() if p.requires_grad)


def save_adapter(model: Any, run_dir: Path, step: int) -> Path:
    """Save the PEFT adapter of ``step`` atomically: temporary folder, verify, rename."""
    final = run_dir / ADAPTERS_DIR / f"step-{step}"
    with atomic_directory(final) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        verify_adapter_dir(tmp, trainable_tensor_count(model))
    return final
