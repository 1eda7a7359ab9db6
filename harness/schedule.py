"""Diagnostic schedules: step 0, every K steps, dense windows (``START:END:EVERY``) and the last step."""

from __future__ import annotations

from collections.abc import Iterable

from .errors import EntError


def parse_windows(windows: Iterable[str]) -> list[tuple[int, int, int]]:
    """Parse ``"1500:3500:100"`` strings into (start, end, every) triples; bad ones raise a user error."""
    parsed = []
    for window in windows:
        parts = str(window).split(":")
        try:
            start, end, every = (int(p) for p in parts)
        except ValueError:
            raise EntError(f"Invalid diagnostic window {window!r}", "write START:END:EVERY, e.g. 1500:3500:100") from None
        if start < 0 or end < start or every <= 0:
            raise EntError(f"Invalid diagnostic window {window!r}", "need 0 <= START <= END and EVERY > 0")
        parsed.append((start, end, every))
    return parsed


def diagnostic_steps(steps: int, every: int, windows: Iterable[str] = ()) -> list[int]:
    """Step 0 (the base model), every ``every`` steps, each window's steps, and the last step."""
    schedule = {0, steps, *range(every, steps + 1, every)}
    for start, end, step in parse_windows(windows):
        schedule.update(s for s in range(start, min(end, steps) + 1, step))
    return sorted(s for s in schedule if 0 <= s <= steps)


def checkpoint_steps(steps: int, diag: list[int], every: int | None) -> set[int]:
    """Training checkpoints: every diagnostic step after 0, plus every ``every`` steps if given."""
    marks = {s for s in diag if s > 0}
    if every:
        marks.update(range(every, steps + 1, every))
    return marks
