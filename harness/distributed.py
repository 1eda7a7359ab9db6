"""`ent run --gpus N`: one run data-parallel over N GPUs of this host (torch.distributed, one process a GPU).

The CLI process prepares the run directory as for one GPU, then starts N worker processes itself (the
environment of torch.distributed's ``env://`` rendezvous, as torchrun sets it), passes stop signals on to
them and waits for all. Every worker loads the same base model and the same LoRA initialisation
and reads the same deterministic data stream; of the ``grad_accum x N`` micro-batches of an optimiser step,
worker ``r`` computes those with index ``i % N == r`` and one all-reduce sums the adapter gradients, each
loss scaled by ``1 / (grad_accum x N)``. So an N-GPU run is the one-GPU run with ``--grad-accum`` N times
larger (same global batch, same sequences, same updates up to the order of a floating-point sum), while each
GPU holds one micro-batch. Diagnostics, adapters, checkpoints and run.json are computed and written by rank 0
alone; the others wait at the next collective. NVLink multicast stays off (NCCL_NVLS_ENABLE=0).

On a CPU (``--device cpu``) the same path runs N processes over gloo: that is how the tests check it.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from .errors import EntError

FAILED_PEER_GRACE_S = 30.0
"""After one worker fails, how long the others get to stop on SIGTERM before they are killed."""
SAFE_NCCL_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


def rank_and_world() -> tuple[int, int]:
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover
        return 0, 1
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_reduce_sum(tensors: list[Any]) -> None:
    """Sum ``tensors`` over all workers in place, with one collective (a flat buffer)."""
    import torch
    import torch.distributed as dist

    if not tensors:
        return
    flat = torch.cat([t.reshape(-1).float() for t in tensors])
    dist.all_reduce(flat)
    offset = 0
    for tensor in tensors:
        count = tensor.numel()
        tensor.copy_(flat[offset:offset + count].view_as(tensor))
        offset += count


def any_worker(flag: bool, device: Any) -> bool:
    """True on every worker if ``flag`` is true on any (a stop signal reaches all at the same step)."""
    import torch
    import torch.distributed as dist

    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value)
    return bool(value.item() > 0)


def check_gpus(gpus: int, device: str) -> None:
    """Refuse --gpus N with fewer than N visible GPUs, before anything is written."""
    if gpus <= 1 or device == "cpu":
        return
    import torch

    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if visible < gpus:
        raise EntError(f"--gpus {gpus} asked for {gpus} GPUs but {visible} are visible",
                       f"use --gpus {max(visible, 1)}, or --device cpu to test the data-parallel path on CPU")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """A worker gets SIGTERM when the `ent` process that started it dies (Linux), so it checkpoints and stops."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def launch(prepared: Any, gpus: int) -> int:
    """Start ``gpus`` workers on ``prepared`` (already on disk) and wait for all; returns the first non-zero
    exit code (0 when all succeed).

    The workers are this process's children (the environment torch.distributed's ``env://`` rendezvous
    reads, as torchrun would set it): SIGTERM or SIGINT reaching `ent` is passed to every worker, which
    checkpoints and stops at the same step as the others, with no deadline to kill it meanwhile; a worker
    that fails stops the others the same way.
    """
    prepared.save_record()
    command = [sys.executable, "-m", "ent_harness.distributed", str(prepared.run_dir)]
    if prepared.resume_from is not None:
        command += ["--resume-from", str(prepared.resume_from)]
    if prepared.redo_diagnostic:
        command.append("--redo-diagnostic")
    if prepared.config.inject_faults:
        command += ["--inject-faults", ",".join(prepared.config.inject_faults)]
    env = {**os.environ, **{k: os.environ.get(k, v) for k, v in SAFE_NCCL_ENV.items()}}
    env["NCCL_NVLS_ENABLE"] = "0"  # never on: multicast can take a shared host's GPUs down
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": str(gpus),
                "LOCAL_WORLD_SIZE": str(gpus)})
    workers = [subprocess.Popen(command, env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
                                preexec_fn=_die_with_parent, close_fds=False) for rank in range(gpus)]
    # close_fds=False: the workers hold what `ent` holds, a sweep's lock on the run included, until they end

    def pass_on(signum: int, _frame: Any) -> None:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signum)

    previous = {sig: signal.signal(sig, pass_on) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        codes: dict[int, int] = {}
        failed_at: float | None = None
        while len(codes) < len(workers):
            for rank, worker in enumerate(workers):
                if rank in codes:
                    continue
                try:
                    codes[rank] = worker.wait(timeout=0.5)
                except subprocess.TimeoutExpired:
                    continue
                if codes[rank] != 0 and failed_at is None:
                    # the others cannot finish a step without it: ask them to stop, then end them (a worker
                    # blocked in a collective with a dead peer never returns); the run resumes from its last
                    # verified checkpoint
                    failed_at = time.monotonic()
                    pass_on(signal.SIGTERM, None)
            if failed_at is not None and time.monotonic() - failed_at > FAILED_PEER_GRACE_S:
                pass_on(signal.SIGKILL, None)
        return next((code for code in codes.values() if code != 0), 0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _worker(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ent_harness.distributed")
    parser.add_argument("run_dir")
    parser.add_argument("--resume-from")
    parser.add_argument("--redo-diagnostic", action="store_true")
    parser.add_argument("--inject-faults", default="")
    args = parser.parse_args(argv)

    import torch
    import torch.distributed as dist

    from .config import RunConfig
    from .faults import FaultPlan
    from .plugin_manager import build_registry
    from .run import PreparedRun, _resolve_components, execute_run, read_run_record

    run_dir = Path(args.run_dir)
    record = read_run_record(run_dir)
    config = RunConfig.from_record(record["config"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = config.device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank)
    # rank 0 alone runs diagnostics and writes multi-GB checkpoints while the others wait at the next
    # collective: give it far longer than NCCL's default 10 minutes
    dist.init_process_group(backend="nccl" if use_cuda else "gloo", timeout=timedelta(hours=2),
                            device_id=torch.device("cuda", local_rank) if use_cuda else None)
    try:
        registry = build_registry()
        model_spec, primary_spec, companion_spec, probes, _, metric_specs = _resolve_components(config, registry)
        faults = tuple(f for f in args.inject_faults.split(",") if f)
        prepared = PreparedRun(config, run_dir, registry, record, probes, model_spec, primary_spec, companion_spec,
                               metric_specs, FaultPlan.from_specs(faults),
                               resume_from=Path(args.resume_from) if args.resume_from else None,
                               redo_diagnostic=args.redo_diagnostic, writer=dist.get_rank() == 0)
        execute_run(prepared)
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(_worker())
