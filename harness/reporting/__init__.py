"""Reports across runs: read run directories, never re-train to make a table (docs/run-format.md)."""

from .collapse import collapse_step, recovery_steps
from .rundata import RunData, load_run

__all__ = ["RunData", "collapse_step", "load_run", "recovery_steps"]
