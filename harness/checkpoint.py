"""Training checkpoints: everything ``--resume`` needs, written atomically and verified before use.

``checkpoints/step-N/`` holds the PEFT adapter, the optimiser state (``torch.save``, read back with
``weights_only=True``), the RNG states and ``trainer_state.json`` (step, data-stream position, learning-rate factor, events).
It is written to a temporary folder, reloaded and checked (every tensor finite, every expected tensor
present) and only then renamed into place, so a folder named ``step-N`` is always complete; a save that
fails half-way leaves the previous checkpoint untouched. Only the newest ``keep`` checkpoints are kept (the
adapters of every diagnostic step live on in ``adapters/``).
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .rundir import atomic_directory, to_jsonable, trainable_tensor_count, verify_adapter_dir

CHECKPOINTS_DIR = "checkpoints"
STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.pt"
RNG_FILE = "rng.safetensors"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def _rng_tensors() -> dict[str, Any]:
    import torch

    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = state
    return tensors


def _restore_rng(tensors: dict[str, Any], python_state: Any, numpy_state: Any) -> None:
    import torch

    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("torch_cuda_"))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    random.setstate((python_state[0], tuple(python_state[1]), python_state[2]))
    np.random.set_state((numpy_state[0], np.array(numpy_state[1], dtype=np.uint32), *numpy_state[2:]))


def list_checkpoints(run_dir: Path) -> list[int]:
    folder = run_dir / CHECKPOINTS_DIR
    if not folder.is_dir():
        return []
    steps = [int(m.group(1)) for p in folder.iterdir() if p.is_dir() and (m := _STEP_DIR.match(p.name))]
    return sorted(steps)


def save_checkpoint(model: Any, optimizer: Any, trainer_state: dict[str, Any], run_dir: Path, step: int,
                    keep: int, fail_midway: bool = False) -> Path:
    """Write, verify and atomically publish ``checkpoints/step-N``; prune to the newest ``keep``."""
    import torch
    from safetensors.torch import save_file

    from .faults import InjectedWriteError

    root = run_dir / CHECKPOINTS_DIR
    final = root / f"step-{step}"
    with atomic_directory(final) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        torch.save(optimizer.state_dict(), tmp / OPTIMIZER_FILE)
        if fail_midway:
            raise InjectedWriteError(f"injected write failure while saving checkpoint step-{step}")
        save_file({k: v.contiguous() for k, v in _rng_tensors().items()}, str(tmp / RNG_FILE))
        state = dict(trainer_state)
        state["python_rng"] = random.getstate()
        np_state = np.random.get_state()
        state["numpy_rng"] = [np_state[0], np_state[1].tolist(), *np_state[2:]]
        (tmp / STATE_FILE).write_text(json.dumps(to_jsonable(state)))
        verify_checkpoint(tmp, expected_adapter_tensors=trainable_tensor_count(model),
                          expected_optimizer_entries=len(optimizer.state_dict()["state"]))
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(root / f"step-{old}", ignore_errors=True)
    return final


def _load_optimizer_state(folder: Path) -> dict[str, Any]:
    import torch

    return torch.load(folder / OPTIMIZER_FILE, map_location="cpu", weights_only=True)


def verify_checkpoint(folder: Path, expected_adapter_tensors: int | None = None,
                      expected_optimizer_entries: int | None = None) -> None:
    """Reload a checkpoint's files and check them; raise OSError naming the first problem."""
    import torch

    for name in (STATE_FILE, OPTIMIZER_FILE, RNG_FILE):
        if not (folder / name).is_file():
            raise OSError(f"checkpoint {folder.name} lacks {name}")
    if expected_adapter_tensors is not None:
        verify_adapter_dir(folder, expected_adapter_tensors)
    try:
        state = _load_optimizer_state(folder)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a bad checkpoint
        raise OSError(f"checkpoint {folder.name}: unreadable optimizer state ({exc})") from None
    entries = state.get("state", {})
    if expected_optimizer_entries is not None and len(entries) != expected_optimizer_entries:
        raise OSError(f"checkpoint {folder.name}: {len(entries)} optimizer entries, expected {expected_optimizer_entries}")
    for index, entry in entries.items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
                raise OSError(f"checkpoint {folder.name}: optimizer state {index}.{name} is not finite")
    json.loads((folder / STATE_FILE).read_text())


def latest_valid_checkpoint(run_dir: Path) -> Path | None:
    """The newest checkpoint folder that passes verification (older ones are tried in turn)."""
    for step in reversed(list_checkpoints(run_dir)):
        folder = run_dir / CHECKPOINTS_DIR / f"step-{step}"
        try:
            verify_checkpoint(folder)
            verify_adapter_dir(folder, len(_adapter_keys(folder)))
        except (OSError, ValueError):
            continue
        return folder
    return None


def _adapter_keys(folder: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(folder / "adapter_model.safetensors"), framework="pt") as handle:
        return list(handle.keys())


def load_checkpoint(folder: Path, model: Any, optimizer: Any, device: Any) -> dict[str, Any]:
    """Load adapter weights, optimiser and RNG states into the live objects; returns the trainer state."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    adapter = load_file(str(folder / "adapter_model.safetensors"), device=str(device))
    result = set_peft_model_state_dict(model, adapter)
    missing = [k for k in getattr(result, "unexpected_keys", [])]
    if missing:
        raise OSError(f"checkpoint {folder.name}: adapter tensors not in the model: {missing[:3]}")
    optimizer.load_state_dict(_load_optimizer_state(folder))
    state = json.loads((folder / STATE_FILE).read_text())
    _restore_rng(load_file(str(folder / RNG_FILE)), state["python_rng"], state["numpy_rng"])
    return state
