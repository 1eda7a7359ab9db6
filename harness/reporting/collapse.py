"""Collapse and recovery of EI along a run (protocol.md, "Dynamics").

- collapse step: the first diagnostic step from which EI is 0 at every later step of the run (permanent);
  None when EI is above 0 at the last step.
- recovery step: a step where EI is above 0 after having been 0 at an earlier step.

EI is "0" when it is at most ``zero_tol`` (EI is a mean of non-negative split estimates, so exact zeros are
the norm; the tolerance only absorbs float noise). Steps whose EI is missing (null) are skipped.
"""

from __future__ import annotations

from collections.abc import Sequence

ZERO_TOL = 1e-9


def _points(steps: Sequence[int], eis: Sequence[float | None]) -> list[tuple[int, float]]:
    return sorted((int(s), float(e)) for s, e in zip(steps, eis, strict=True) if e is not None)


def collapse_step(steps: Sequence[int], eis: Sequence[float | None], zero_tol: float = ZERO_TOL) -> int | None:
    points = _points(steps, eis)
    collapse: int | None = None
    for step, ei in reversed(points):
        if ei > zero_tol:
            break
        collapse = step
    return collapse


def recovery_steps(steps: Sequence[int], eis: Sequence[float | None], zero_tol: float = ZERO_TOL) -> list[int]:
    recoveries: list[int] = []
    seen_zero = False
    previous_zero = False
    for step, ei in _points(steps, eis):
        zero = ei <= zero_tol
        if not zero and seen_zero and previous_zero:
            recoveries.append(step)
        seen_zero = seen_zero or zero
        previous_zero = zero
    return recoveries
