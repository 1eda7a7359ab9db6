"""Training checkpoints: everything ``--resume`` needs, written atomically and verified before use.

``checkpoints/step-N/`` holds the PEFT adapter, the optimiser state (tensors in safetensors, the rest in
JSON), the RNG states and ``trainer_state.json`` (step, data-stream position, learning-rate factor, events).
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
OPTIMIZER_TENSORS = "optimizer.safetensors"
OPTIMIZER_META = "optimizer.json"
RNG_FILE = "rng.safetensors"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def _flatten_optimizer(state_dict: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split an optimizer state dict into tensors (for safetensors) and JSON metadata."""
    import torch

    tensors: dict[str, Any] = {}
    meta_state: dict[str, dict[str, Any]] = {}
    for index, entry in state_dict["state"].items():
        meta_entry: dict[str, Any] = {}
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value.detach().to("cpu").contiguous()
                meta_entry[name] = {"tensor": f"{index}.{name}"}
            else:
                meta_entry[name] = {"value": value}
        meta_state[str(index)] = meta_entry
    return tensors, {"state": meta_state, "param_groups": state_dict["param_groups"]}


def _unflatten_optimizer(tensors: dict[str, Any], meta: dict[str, Any], device: Any) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for index, entry in meta["state"].items():
        state[int(index)] = {
            name: (tensors[spec["tensor"]].to(device) if "tensor" in spec else spec["value"])
            for name, spec in entry.items()
        }
    return {"state": state, "param_groups": meta["param_groups"]}


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
    from safetensors.torch import save_file

    from .faults import InjectedWriteError

    root = run_dir / CHECKPOINTS_DIR
    final = root / f"step-{step}"
    with atomic_directory(final) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tensors, meta = _flatten_optimizer(optimizer.state_dict())
        save_file(tensors, str(tmp / OPTIMIZER_TENSORS))
        if fail_midway:
            raise InjectedWriteError(f"injected write failure while saving checkpoint step-{step}")
        (tmp / OPTIMIZER_META).write_text(json.dumps(to_jsonable(meta)))
        save_file({k: v.contiguous() for k, v in _rng_tensors().items()}, str(tmp / RNG_FILE))
        state = dict(trainer_state)
        state["python_rng"] = random.getstate()
        np_state = np.random.get_state()
        state["numpy_rng"] = [np_state[0], np_state[1].tolist(), *np_state[2:]]
        (tmp / STATE_FILE).write_text(json.dumps(to_jsonable(state)))
        verify_checkpoint(tmp, expected_adapter_tensors=trainable_tensor_count(model),
                          expected_optimizer_tensors=len(tensors))
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(root / f"step-{old}", ignore_errors=True)
    return final


def verify_checkpoint(folder: Path, expected_adapter_tensors: int | None = None,
                      expected_optimizer_tensors: int | None = None) -> None:
    """Reload a checkpoint's files and check them; raise OSError naming the first problem."""
    import torch
    from safetensors.torch import load_file

    for name in (STATE_FILE, OPTIMIZER_META, OPTIMIZER_TENSORS, RNG_FILE):
        if not (folder / name).is_file():
            raise OSError(f"checkpoint {folder.name} lacks {name}")
    if expected_adapter_tensors is not None:
        verify_adapter_dir(folder, expected_adapter_tensors)
    tensors = load_file(str(folder / OPTIMIZER_TENSORS))
    if expected_optimizer_tensors is not None and len(tensors) != expected_optimizer_tensors:
        raise OSError(f"checkpoint {folder.name}: {len(tensors)} optimizer tensors, expected {expected_optimizer_tensors}")
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise OSError(f"checkpoint {folder.name}: optimizer tensor {name} is not finite")
    json.loads((folder / STATE_FILE).read_text())
    json.loads((folder / OPTIMIZER_META).read_text())


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
    tensors = load_file(str(folder / OPTIMIZER_TENSORS))
    meta = json.loads((folder / OPTIMIZER_META).read_text())
    optimizer.load_state_dict(_unflatten_optimizer(tensors, meta, device))
    state = json.loads((folder / STATE_FILE).read_text())
    _restore_rng(load_file(str(folder / RNG_FILE)), state["python_rng"], state["numpy_rng"])
    return state
