"""The QLoRA training loop with diagnostics, checkpoints, the non-finite guard and exact resume.

Order of work at a diagnostic step S (so a kill at any moment loses nothing that was reported):
probe activations and metrics -> ``adapters/step-S`` (verified) -> ``checkpoints/step-S`` (verified) ->
the record appended to diagnostics.jsonl -> run.json updated. ``--resume`` continues from the newest
verified checkpoint, drops records after it and recomputes the checkpoint step's record if it is missing.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoint import load_checkpoint, save_checkpoint
from .config import OPTIMIZERS, RunConfig
from .data import MixedBatches
from .diagnostics import run_metric_suite
from .distributed import all_reduce_sum, any_worker, rank_and_world
from .faults import FaultPlan
from .guard import Snapshot, adapter_norm
from .modeling import LoadedModel, terminal_activations
from .probes import Probe, probe_labels
from .reporters import TensorBoardReporter
from .rundir import DIAGNOSTICS_FILE, append_jsonl, save_adapter
from .schedule import checkpoint_steps, diagnostic_steps
from .speed import SpeedPlan, causal_lm_loss

BASE_ACTIVATIONS_FILE = "base_activations.npy"
ProgressCallback = Callable[[int, dict[str, Any]], None]


def lr_at(step: int, config: RunConfig) -> float:
    """Linear warm-up to ``lr`` over ``warmup_steps``, then constant (the paper's schedule)."""
    if config.warmup_steps and step <= config.warmup_steps:
        return config.lr * step / config.warmup_steps
    return config.lr


TORCH_ADAMW_NAMES = {"adamw": "adamw (torch)", "adamw_fused": "adamw (torch, fused)"}
"""The names run.json records (``optimizer``) for torch's AdamW; bitsandbytes' are recorded by their choice."""


def resolve_optimizer(config: RunConfig, device_type: str, fast: bool = False, recorded: str | None = None) -> str:
    """The optimizer ``--optimizer auto`` means here.

    A resumed run keeps the one it recorded (its checkpointed state belongs to that implementation). A new
    run on CUDA gets torch's fused AdamW under ``--speed fast`` (one kernel for every adapter tensor; the
    paged optimizer launches per tensor, and its step spanned 75 ms of a 32B step's GPU timeline on an H200;
    its states are in GPU memory either way at the sizes ``fast`` plans for), else bitsandbytes' paged 32-bit
    AdamW (QLoRA's choice, which can page its states out under memory pressure); torch's AdamW on the CPU.
    All of them compute AdamW with the same hyper-parameters.
    """
    choice = config.optimizer
    if choice != "auto":
        return choice
    by_name = {name: key for key, name in TORCH_ADAMW_NAMES.items()}
    if recorded is not None:
        known = by_name.get(recorded, recorded)
        if known in OPTIMIZERS and known != "auto":
            return known
    if device_type == "cuda":
        if fast:
            return "adamw_fused"
        if _bnb_optimizers():
            return "paged_adamw"
    return "adamw"


def build_optimizer(trainable: list[Any], config: RunConfig, device_type: str, fast: bool = False,
                    recorded: str | None = None) -> tuple[Any, str]:
    """The optimizer of :func:`resolve_optimizer` and the name run.json records for it."""
    import torch

    choice = resolve_optimizer(config, device_type, fast, recorded)
    if choice in TORCH_ADAMW_NAMES:
        fused = {"fused": True} if choice == "adamw_fused" else {}
        return (torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay, **fused),
                TORCH_ADAMW_NAMES[choice])
    if device_type != "cuda" or not _bnb_optimizers():
        from .errors import EntError

        if config.optimizer == "auto":  # a resumed run's recorded optimizer: its state needs the same one
            raise EntError(f"This run was recorded with the optimizer {choice}, which needs bitsandbytes on a CUDA GPU",
                           "resume it on a machine with a CUDA GPU and bitsandbytes (pip install bitsandbytes)")
        raise EntError(f"--optimizer {choice} needs bitsandbytes on a CUDA GPU", "use --optimizer adamw")
    import bitsandbytes as bnb

    cls = {"paged_adamw": bnb.optim.PagedAdamW32bit, "adamw8bit": bnb.optim.AdamW8bit,
           "paged_adamw8bit": bnb.optim.PagedAdamW8bit}[choice]
    return cls(trainable, lr=config.lr, weight_decay=config.weight_decay), choice


def _bnb_optimizers() -> bool:
    try:
        import bitsandbytes.optim  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return True


def forward_backward(model: Any, ids: Any, speed: SpeedPlan, decoder_path: str, grad_accum: int,
                     poison: bool = False) -> float:
    """One micro-batch: autocast-bf16 forward, loss / grad_accum, backward; returns the scaled loss.

    bench/qlora_throughput.py times exactly this against the plain transformers + peft step.
    """
    import torch

    with torch.autocast(device_type=ids.device.type, dtype=torch.bfloat16):
        loss = causal_lm_loss(model, ids, speed.fused_loss, decoder_path) / grad_accum
    if poison:  # --inject-fault nan-loss
        loss = loss * float("nan")
    loss.backward()
    return float(loss.detach())


def dropout_seed(seed: int, step: int, micro_batch: int) -> int:
    """The RNG seed of one micro-batch's LoRA dropout: a function of (run seed, step, micro-batch index) only,
    so a resumed run, a rolled-back step and an N-GPU run draw the masks a one-GPU run draws."""
    state = np.random.SeedSequence([seed, step, micro_batch]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


class Trainer:
    """One run's training loop. ``run()`` returns the final status."""

    def __init__(self, config: RunConfig, run_dir: Path, loaded: LoadedModel, batches: MixedBatches,
                 probes: list[Probe], registry: Any, metric_specs: list[Any], faults: FaultPlan,
                 record: dict[str, Any], save_record: Callable[[], None], reporter: TensorBoardReporter | None,
                 on_progress: ProgressCallback | None = None, speed: SpeedPlan | None = None,
                 writer: bool = True) -> None:
        import torch

        self.config = config
        self.run_dir = run_dir
        self.loaded = loaded
        self.model = loaded.model
        self.batches = batches
        self.registry = registry
        self.metric_specs = metric_specs
        self.faults = faults
        self.record = record
        self.save_record = save_record
        self.reporter = reporter
        self.on_progress = on_progress
        self.speed = speed or SpeedPlan(mode="plain")
        self.writer = writer  # rank 0 (or the only process) computes diagnostics and writes files
        self.rank, self.world = rank_and_world()
        self.decoder_path = loaded.family.layers_path.rsplit(".", 1)[0]
        self.texts = [p.text or "" for p in probes]
        self.labels = probe_labels(probes)
        self.probe_ids = [p.id for p in probes]
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer, optimizer_name = build_optimizer(self.trainable, config, loaded.device.type,
                                                         fast=self.speed.mode == "fast",
                                                         recorded=record.get("optimizer"))
        self.record["optimizer"] = optimizer_name
        self.diag_steps = diagnostic_steps(config.steps, config.diag_every, config.diag_windows)
        self.ckpt_steps = checkpoint_steps(config.steps, self.diag_steps, config.checkpoint_every)
        self.step = 0
        self.lr_factor = 1.0
        self.rollbacks = 0
        self.losses: list[float] = []
        self.grad_norm = float("nan")
        self.elapsed_before = 0.0
        self.base_activations: np.ndarray | None = None
        self.terminate = False
        self.record_train_loss: float | None = None
        self.torch = torch

    # ---- events ------------------------------------------------------------------------------------
    def event(self, step: int, kind: str, detail: str, **extra: Any) -> None:
        if not self.writer:
            return
        entry = {"step": step, "event": kind, "detail": detail, **extra}
        self.record.setdefault("events", []).append(entry)
        append_jsonl(self.run_dir / DIAGNOSTICS_FILE, entry)
        self.save_record()

    # ---- state ---------------------------------------------------------------------------------------
    def trainer_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "lr_factor": self.lr_factor,
            "rollbacks": self.rollbacks,
            "losses": self.losses,
            "grad_norm": self.grad_norm,
            "elapsed_s": self.elapsed(),
            "data": self.batches.state(),
        }

    def restore(self, folder: Path) -> None:
        state = load_checkpoint(folder, self.model, self.optimizer, self.loaded.device)
        self.step = int(state["step"])
        self.lr_factor = float(state["lr_factor"])
        self.rollbacks = int(state["rollbacks"])
        self.losses = list(state["losses"])
        self.grad_norm = float(state["grad_norm"]) if state["grad_norm"] is not None else float("nan")
        self.elapsed_before = float(state["elapsed_s"])
        self.batches.restore(state["data"])
        self.record_train_loss = state.get("record_train_loss")

    def elapsed(self) -> float:
        return self.elapsed_before + (time.perf_counter() - self.started)

    # ---- diagnostics ---------------------------------------------------------------------------------
    def load_base_activations(self) -> None:
        path = self.run_dir / BASE_ACTIVATIONS_FILE
        if path.is_file():
            self.base_activations = np.load(path)

    def _store_base_activations(self, activations: np.ndarray) -> None:
        path = self.run_dir / BASE_ACTIVATIONS_FILE
        tmp = path.with_name(f".{path.name}.tmp.npy")
        np.save(tmp, activations)
        tmp.replace(path)
        self.base_activations = activations

    def diagnose(self, step: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        by_length = self.config.probe_batching == "by-length"
        activations = terminal_activations(self.loaded, self.texts, self.config.probe_batch_size,
                                           self.config.probe_max_tokens, by_length)
        if self.base_activations is None:
            if self.config.init_adapter:
                with self.model.disable_adapter():
                    base = terminal_activations(self.loaded, self.texts, self.config.probe_batch_size,
                                                self.config.probe_max_tokens, by_length)
            else:
                base = activations  # LoRA's B starts at zero: step 0 is the base model
            self._store_base_activations(base)
        metrics = run_metric_suite(self.registry, activations, self.labels, self.config.metrics_seed,
                                   self.base_activations, self.metric_specs, self.probe_ids)
        torch = self.torch
        return {
            "step": step,
            **metrics,
            "train_loss": float(np.mean(self.losses)) if self.losses else None,
            "lr": lr_at(step, self.config) * self.lr_factor if step else 0.0,
            "grad_norm": self.grad_norm if step else None,
            "tokens_seen": step * self.config.batch_size * self.config.grad_accum * self.world * self.config.seq_len,
            "companion_fraction": self.batches.companion_fraction,
            "wall_time_s": self.elapsed(),
            "diagnostic_time_s": time.perf_counter() - t0,
            "gpu_memory_gb": torch.cuda.max_memory_allocated() / 1e9 if torch.cuda.is_available() else None,
        }

    def publish(self, step: int, diag: dict[str, Any] | None) -> None:
        """Adapter, checkpoint, record, in that order (see the module docstring)."""
        if diag is not None:
            self.losses.clear()  # their mean is in the record; the checkpoint must not carry them on
            diag["adapter"] = str(save_adapter(self.model, self.run_dir, step).relative_to(self.run_dir))
        if step in self.ckpt_steps:
            fail = self.faults.take("write-fail", step)
            state = self.trainer_state()
            if diag is not None:  # lets a resume recompute this step's record exactly if the kill comes next
                state["record_train_loss"] = diag.get("train_loss")
            folder = save_checkpoint(self.model, self.optimizer, state, self.run_dir, step,
                                     self.config.keep_checkpoints, fail_midway=fail)
            self.record["last_checkpoint"] = str(folder.relative_to(self.run_dir))
        if diag is not None:
            append_jsonl(self.run_dir / DIAGNOSTICS_FILE, diag)
            if self.reporter:
                self.reporter.diagnostics(step, diag)
            if self.on_progress:
                self.on_progress(step, diag)
        self.record["step"] = step
        self.save_record()

    # ---- the loop ------------------------------------------------------------------------------------
    def _request_stop(self, signum: int, _frame: Any) -> None:
        self.terminate = True

    def run(self, resume_from: Path | None, redo_diagnostic: bool) -> str:
        torch = self.torch
        self.started = time.perf_counter()
        previous = {sig: signal.signal(sig, self._request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            if resume_from is not None:
                self.restore(resume_from)
                self.load_base_activations()
                self.event(self.step, "resumed", f"from {resume_from.relative_to(self.run_dir)}")
                if redo_diagnostic and self.writer:
                    self.append_diagnostic_only(self.step)
            elif self.writer:
                self.publish(0, self.diagnose(0))
            snapshot = Snapshot.take(self.step, self.trainable, self.optimizer)
            snapshot_losses = len(self.losses)
            self.model.train()
            device = self.loaded.device
            while self.step < self.config.steps:
                if any_worker(self.terminate, device) if self.world > 1 else self.terminate:
                    if self.writer:
                        self.publish_interrupt()
                    return "interrupted"
                step = self.step + 1
                self.faults.maybe_crash(step)
                lr = lr_at(step, self.config) * self.lr_factor
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                step_loss = 0.0
                micro_batches = self.config.grad_accum * self.world
                poison = self.faults.take("nan-loss", step)
                for index in range(micro_batches):  # every worker reads the whole stream, computes its share
                    batch = self.batches.next_batch()
                    if index % self.world != self.rank:
                        continue
                    ids = torch.tensor(batch, dtype=torch.long, device=device)
                    if self.config.dropout_seeding == "per-micro-batch":
                        torch.manual_seed(dropout_seed(self.config.seed, step, index))
                    step_loss += forward_backward(self.model, ids, self.speed, self.decoder_path, micro_batches,
                                                  poison)
                if self.world > 1:
                    step_loss = self._sum_over_workers(step_loss, device)
                grad_norm = float(torch.nn.utils.clip_grad_norm_(self.trainable, self.config.max_grad_norm))
                problem = None
                updated = False
                if not (math.isfinite(step_loss) and math.isfinite(grad_norm)):
                    problem = f"non-finite loss or gradient (loss={step_loss}, grad_norm={grad_norm})"
                else:
                    self.optimizer.step()
                    updated = True
                    if self.faults.take("nan-adapter", step):
                        with torch.no_grad():
                            self.trainable[0].fill_(float("nan"))
                    norm = adapter_norm(self.trainable)
                    if not math.isfinite(norm):
                        problem = f"non-finite adapter weights after the update (norm={norm})"
                self.optimizer.zero_grad(set_to_none=True)
                if problem is not None:
                    self.rollbacks += 1
                    if updated:  # the update corrupted the state: return to the last good snapshot
                        snapshot.restore(self.trainable, self.optimizer)
                        del self.losses[snapshot_losses:]
                        self.step = snapshot.step
                    # else nothing was applied: the state of step - 1 is the last good one
                    if self.rollbacks > self.config.max_rollbacks:
                        self.event(step, "diverged", f"{problem}; limit of {self.config.max_rollbacks} rollbacks "
                                   f"reached, stopped at the last good state (step {self.step})")
                        return "diverged"
                    self.lr_factor *= self.config.rollback_lr_factor
                    self.event(step, "rollback", f"{problem}; back to the state of step {self.step}, batch skipped, "
                               f"learning-rate factor now {self.lr_factor:g}", to_step=self.step,
                               lr_factor=self.lr_factor, rollback=self.rollbacks)
                    continue
                self.step = step
                self.grad_norm = grad_norm
                self.losses.append(step_loss)
                if self.reporter:
                    self.reporter.training_step(step, step_loss, lr, grad_norm)
                diag = self.diagnose(step) if step in self.diag_steps and self.writer else None
                if self.writer and (diag is not None or step in self.ckpt_steps):
                    self.publish(step, diag)
                elif step in self.diag_steps:
                    self.losses.clear()  # as publish() does on the writer
                if step in self.ckpt_steps or step % self.config.snapshot_every == 0:
                    snapshot = Snapshot.take(step, self.trainable, self.optimizer, reuse=snapshot)
                    snapshot_losses = len(self.losses)
                if self.on_progress and diag is None:
                    self.on_progress(step, {"train_loss": step_loss})
            return "finished"
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self.reporter:
                self.reporter.close()

    def _sum_over_workers(self, step_loss: float, device: Any) -> float:
        """Sum the adapter gradients and the micro-batch losses of all workers (one all-reduce)."""
        torch = self.torch
        loss = torch.tensor([step_loss], dtype=torch.float32, device=device)
        grads = [p.grad for p in self.trainable if p.grad is not None]
        all_reduce_sum([*grads, loss])
        return float(loss.item())

    def append_diagnostic_only(self, step: int) -> None:
        diag = self.diagnose(step)
        diag["train_loss"] = self.record_train_loss  # the losses behind it were cleared before the checkpoint
        diag["adapter"] = f"adapters/step-{step}"
        self.losses.clear()
        append_jsonl(self.run_dir / DIAGNOSTICS_FILE, diag)

    def publish_interrupt(self) -> None:
        """On SIGTERM/SIGINT: checkpoint the current step (unless it just was) and stop."""
        if self.step not in self.ckpt_steps and self.step > 0:
            folder = save_checkpoint(self.model, self.optimizer, self.trainer_state(), self.run_dir, self.step,
                                     self.config.keep_checkpoints)
            self.record["last_checkpoint"] = str(folder.relative_to(self.run_dir))
        self.event(self.step, "interrupted", "stopped by a signal after a checkpoint; continue with --resume")
