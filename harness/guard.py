"""The non-finite guard: cheap per-step checks and an in-memory snapshot to roll back to.

Every step the loss, the gradient norm and the adapter weights are checked (the adapter by one fused norm
over all trainable tensors: one number, one device sync). A non-finite value never reaches a save: the
trainer restores the last good snapshot (adapter and optimiser state), skips the offending batch, lowers
the learning rate by a factor if asked, and retries up to a limit before stopping as ``diverged``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any


def adapter_norm(trainable: list[Any]) -> float:
    """The global L2 norm of every trainable tensor (NaN or inf if any element is)."""
    import torch

    if not trainable:
        return 0.0
    norms = torch._foreach_norm([p.detach() for p in trainable])
    return float(torch.linalg.vector_norm(torch.stack([n.float() for n in norms])))


def is_finite(value: float) -> bool:
    return math.isfinite(value)


@dataclass
class Snapshot:
    """A good state to return to: trainable tensors, optimiser state and the step they belong to."""

    step: int
    params: list[Any]
    optimizer_state: dict[str, Any]

    @classmethod
    def take(cls, step: int, trainable: list[Any], optimizer: Any) -> Snapshot:
        params = [p.detach().to("cpu", copy=True) for p in trainable]
        state = optimizer.state_dict()
        cpu_state = {
            "state": {i: {k: (v.detach().to("cpu", copy=True) if hasattr(v, "detach") else copy.deepcopy(v))
                          for k, v in entry.items()} for i, entry in state["state"].items()},
            "param_groups": copy.deepcopy(state["param_groups"]),
        }
        return cls(step, params, cpu_state)

    def restore(self, trainable: list[Any], optimizer: Any) -> None:
        import torch

        with torch.no_grad():
            for live, saved in zip(trainable, self.params, strict=True):
                live.copy_(saved.to(live.device))
        optimizer.load_state_dict(copy.deepcopy(self.optimizer_state))
