"""Fault injection, for tests and for users who want to see the guards work.

``--inject-fault KIND@STEP`` (repeatable):

- ``nan-loss@S``: the loss of step S is made NaN (so are its gradients): the guard skips the step, rolls
  back to the last good state and goes on.
- ``nan-adapter@S``: after the optimiser update of step S one adapter tensor is filled with NaN: the
  per-step adapter check catches it and rolls back.
- ``crash@S``: the process kills itself with SIGKILL at the start of step S, as an out-of-memory killer or
  a pre-empted node would; ``ent run --resume`` continues from the last verified checkpoint.
- ``write-fail@S``: the checkpoint save of step S fails half-way through writing (an I/O error); the
  previous checkpoint stays intact and the run stops as ``failed``, resumable.

Faults fire only in the invocation that names them: ``--resume`` does not re-inject the faults recorded in
run.json unless they are given again.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass, field

from .errors import EntError

FAULT_KINDS = ("nan-loss", "nan-adapter", "crash", "write-fail")


def parse_faults(specs: Iterable[str]) -> list[tuple[str, int]]:
    faults = []
    for spec in specs:
        kind, _, step = str(spec).partition("@")
        if kind not in FAULT_KINDS or not step.isdigit():
            raise EntError(f"Invalid fault {spec!r}", f"write KIND@STEP with KIND one of {', '.join(FAULT_KINDS)}")
        faults.append((kind, int(step)))
    return faults


class InjectedWriteError(OSError):
    """The I/O error raised by a ``write-fail`` fault."""


@dataclass
class FaultPlan:
    """Faults still to fire in this invocation; each fires once."""

    pending: set[tuple[str, int]] = field(default_factory=set)
    fired: list[str] = field(default_factory=list)

    @classmethod
    def from_specs(cls, specs: Iterable[str]) -> FaultPlan:
        return cls(set(parse_faults(specs)))

    def take(self, kind: str, step: int) -> bool:
        if (kind, step) in self.pending:
            self.pending.discard((kind, step))
            self.fired.append(f"{kind}@{step}")
            return True
        return False

    def maybe_crash(self, step: int) -> None:
        if self.take("crash", step):
            os.kill(os.getpid(), signal.SIGKILL)
