"""``python -m ent_harness.sweep_child ARGS`` is ``ent ARGS``, started by a sweep worker for one run.

The only difference: on Linux the process asks the kernel for SIGTERM when the worker that started it dies
(``PR_SET_PDEATHSIG``). A run whose Ray worker, SLURM job step or local driver is killed therefore
checkpoints and stops as ``interrupted`` (the protocol's SIGTERM handling) instead of training on with
nobody waiting for it, and the sweep's lock on the run is released with it.
"""

from __future__ import annotations

import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
    except (OSError, AttributeError):
        return
    parent = os.environ.get("ENT_SWEEP_PARENT_PID")
    if parent and parent.isdigit() and os.getppid() != int(parent):  # the worker died before prctl
        os.kill(os.getpid(), signal.SIGTERM)


if __name__ == "__main__":
    die_with_parent()
    from .cli import main

    main(sys.argv[1:])
