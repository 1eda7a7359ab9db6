"""`ent run --gpus N`: N data-parallel workers equal one worker with N times the gradient accumulation.

On the CPU the same code path runs N processes over gloo (harness/distributed.py); the GPU figures are in
BENCHMARKS.md when a machine with several GPUs was available.
"""

from __future__ import annotations

import json

import pytest
from conftest import run_ent


def _records(run_dir):
    lines = (run_dir / "diagnostics.jsonl").read_text().splitlines()
    return [record for record in map(json.loads, lines) if "event" not in record]


@pytest.mark.slow
def test_two_workers_equal_one_worker_with_twice_the_accumulation(tmp_path, one_blas_thread) -> None:
    common = ["run", "--model", "tiny-qwen2", "--steps", "20", "--diag-every", "10", "--device", "cpu",
              "--no-tensorboard", "--seed", "4"]
    two = run_ent(*common, "--gpus", "2", "--out", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr
    one = run_ent(*common, "--grad-accum", "2", "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr
    parallel, serial = _records(tmp_path / "two"), _records(tmp_path / "one")
    assert [r["step"] for r in parallel] == [r["step"] for r in serial] == [0, 10, 20]
    for p, s in zip(parallel, serial, strict=True):
        assert p["ei"] == pytest.approx(s["ei"], abs=1e-9)
        assert p["tokens_seen"] == s["tokens_seen"]
        if s["train_loss"] is not None:  # the same micro-batches and dropout masks, summed in another order
            assert p["train_loss"] == pytest.approx(s["train_loss"], rel=1e-5)
            assert p["grad_norm"] == pytest.approx(s["grad_norm"], rel=1e-4)
    record = json.loads((tmp_path / "two" / "run.json").read_text())
    assert record["status"] == "finished" and record["world_size"] == 2 and record["config"]["gpus"] == 2
    # rank 0 alone wrote: one record per step, one adapter per diagnostic step
    assert sorted(p.name for p in (tmp_path / "two" / "adapters").iterdir()) == ["step-0", "step-10", "step-20"]

    # every worker SIGKILLed at step 15: run.json says failed; --resume continues from checkpoint 10 to the
    # uninterrupted trajectory
    crashed = tmp_path / "crashed"
    first = run_ent(*common, "--gpus", "2", "--inject-fault", "crash@15", "--out", str(crashed))
    assert first.returncode == 1
    record = json.loads((crashed / "run.json").read_text())
    assert record["status"] == "failed" and "exited with code" in record["error"]
    again = run_ent("run", "--resume", str(crashed))
    assert again.returncode == 0, again.stderr
    for p, r in zip(parallel, _records(crashed), strict=True):
        assert {k: v for k, v in p.items() if not k.endswith("_s")} == {k: v for k, v in r.items()
                                                                       if not k.endswith("_s")}


def test_more_gpus_than_visible_is_a_one_line_error(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.device_count() >= 64:
        pytest.skip("this host has 64 GPUs")
    result = run_ent("run", "--model", "tiny-qwen2", "--gpus", "64", "--device", "cuda", "--out", str(tmp_path / "x"))
    assert result.returncode == 2
    assert "--gpus 64" in result.stderr and len(result.stderr.strip().splitlines()) == 1
