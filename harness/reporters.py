"""TensorBoard event files in the run directory (``RUN_DIR/tensorboard``): loss, lr, gradient norm and every
scalar metric. Uses tensorboardX (a light dependency); without it, runs go on and run.json says why."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


class TensorBoardReporter:
    def __init__(self, log_dir: Path, purge_step: int | None = None) -> None:
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(logdir=str(log_dir), purge_step=purge_step, flush_secs=30)

    def training_step(self, step: int, loss: float, lr: float, grad_norm: float) -> None:
        self.writer.add_scalar("train/loss", loss, step)
        self.writer.add_scalar("train/lr", lr, step)
        self.writer.add_scalar("train/grad_norm", grad_norm, step)

    def diagnostics(self, step: int, record: dict[str, Any]) -> None:
        for key, value in record.items():
            if isinstance(value, bool) or key == "step":
                continue
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(f"geometry/{key}", value, step)
            elif isinstance(value, dict) and key in ("accuracy", "ei_per_concept"):
                for concept, v in value.items():
                    if isinstance(v, (int, float)) and math.isfinite(v):
                        self.writer.add_scalar(f"geometry/{key}/{concept}", v, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_tensorboard(run_dir: Path, enabled: bool, purge_step: int | None) -> tuple[TensorBoardReporter | None, str]:
    """A reporter and a line for run.json saying what was written."""
    if not enabled:
        return None, "off"
    try:
        return TensorBoardReporter(run_dir / "tensorboard", purge_step), "tensorboard/ (tensorboardX)"
    except ImportError as exc:
        return None, f"unavailable ({exc})"
