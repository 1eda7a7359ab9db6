"""RunConfig: one frozen, validated object per run.

Precedence, lowest first: the protocol's defaults (below) < the model plugin's ``run_defaults`` < a TOML
config file (``--config``) < command-line flags. The resolved values are recorded in run.json.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import EntError
from .faults import parse_faults
from .schedule import parse_windows

QUANT_MODES = ("auto", "nf4", "none")
DEVICES = ("auto", "cpu", "cuda")
OPTIMIZERS = ("auto", "adamw", "adamw_fused", "paged_adamw", "adamw8bit", "paged_adamw8bit")
SWITCHES = ("auto", "on", "off")
SPEED_MODES = ("auto", "fast", "low-memory", "plain")  # harness/speed.py says what each does
PROBE_BATCH_SIZE = 128
"""Probes per forward pass in diagnostics (and ``ent diagnose``). Probe passes run eagerly, and an eager pass
costs about 3 ms of Python per decoder layer whatever its size, so few large batches are fastest: 0.42-0.46 s
at 128 against 1.06-2.15 s at 16 for factorial-v1 on the 7B twin (H200, BENCHMARKS.md). Runs recorded with
16 keep 16 (from_record)."""
PROBE_BATCH_TOKEN_PROBES = 16
"""A probe batch holds at most this many probes' worth of padded tokens at the run's probe_max_tokens: what a
batch held when 16 was the batch size, so long probes take no more memory than then (and batches of 16 split
exactly as then)."""


@dataclass(frozen=True)
class RunConfig:
    """Every setting of a run. Defaults are the paper's B-protocol (../shared/spec/protocol.md)."""

    model: str
    model_path: str | None = None
    random_weights: bool = False
    companion: str = "nl"
    primary: str = "code"
    probes: str = "factorial-v1"
    out: str | None = None
    seed: int = 0
    steps: int = 5000
    diag_every: int = 500
    diag_windows: tuple[str, ...] = ()
    checkpoint_every: int | None = None
    keep_checkpoints: int = 2
    companion_share: float = 0.5
    seq_len: int = 1024
    batch_size: int = 4
    grad_accum: int = 1
    lr: float = 1e-4
    warmup_steps: int = 100
    max_grad_norm: float = 1.0
    weight_decay: float = 0.0
    optimizer: str = "auto"
    gradient_checkpointing: str = "auto"
    speed: str = "auto"
    memory_budget_gib: float | None = None
    gpus: int = 1
    compile_layers: str = "auto"
    dropout_seeding: str = "per-micro-batch"  # LoRA dropout seeded by (seed, step, micro-batch); "stream": one RNG stream
    probe_batching: str = "by-length"  # probes batched by token length; "in-order": in the probe set's order
    max_rollbacks: int = 3
    rollback_lr_factor: float = 0.5
    snapshot_every: int = 50
    inject_faults: tuple[str, ...] = ()
    init_adapter: str | None = None
    tensorboard: bool = True
    lora_r: int = 64
    lora_alpha: int = 128
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] | None = None
    quantize: str = "auto"
    device: str = "auto"
    probe_batch_size: int = PROBE_BATCH_SIZE
    probe_max_tokens: int = 256
    offline: bool = False
    metrics_seed: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        positive = ("steps", "diag_every", "seq_len", "batch_size", "grad_accum", "lora_r", "lora_alpha",
                    "probe_batch_size", "probe_max_tokens")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise EntError(f"Invalid {name} {value!r}", f"--{name.replace('_', '-')} takes a positive integer")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise EntError(f"Invalid warmup_steps {self.warmup_steps!r}", "give a non-negative integer")
        if not 0.0 <= float(self.companion_share) <= 1.0:
            raise EntError(f"Invalid companion_share {self.companion_share!r}", "give a share between 0 and 1")
        if not float(self.lr) > 0:
            raise EntError(f"Invalid lr {self.lr!r}", "give a positive learning rate")
        if not 0.0 <= float(self.lora_dropout) < 1.0:
            raise EntError(f"Invalid lora_dropout {self.lora_dropout!r}", "give a value in [0, 1)")
        if self.quantize not in QUANT_MODES:
            raise EntError(f"Invalid quantize {self.quantize!r}", f"choose one of {', '.join(QUANT_MODES)}")
        if self.device not in DEVICES:
            raise EntError(f"Invalid device {self.device!r}", f"choose one of {', '.join(DEVICES)}")
        if self.optimizer not in OPTIMIZERS:
            raise EntError(f"Invalid optimizer {self.optimizer!r}", f"choose one of {', '.join(OPTIMIZERS)}")
        if self.speed not in SPEED_MODES:
            raise EntError(f"Invalid speed {self.speed!r}", f"choose one of {', '.join(SPEED_MODES)}")
        if self.memory_budget_gib is not None and not float(self.memory_budget_gib) > 0:
            raise EntError(f"Invalid memory_budget_gib {self.memory_budget_gib!r}", "give a positive number of GiB")
        if not isinstance(self.gpus, int) or isinstance(self.gpus, bool) or self.gpus < 1:
            raise EntError(f"Invalid gpus {self.gpus!r}", "--gpus takes a positive integer")
        if self.dropout_seeding not in ("per-micro-batch", "stream"):
            raise EntError(f"Invalid dropout_seeding {self.dropout_seeding!r}", "choose per-micro-batch or stream")
        if self.probe_batching not in ("by-length", "in-order"):
            raise EntError(f"Invalid probe_batching {self.probe_batching!r}", "choose by-length or in-order")
        if self.compile_layers not in SWITCHES:
            raise EntError(f"Invalid compile_layers {self.compile_layers!r}", "choose auto, on or off")
        if self.gradient_checkpointing not in SWITCHES:
            raise EntError(f"Invalid gradient_checkpointing {self.gradient_checkpointing!r}", "choose auto, on or off")
        for name in ("max_rollbacks", "keep_checkpoints", "snapshot_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "max_rollbacks" else 1):
                raise EntError(f"Invalid {name} {value!r}", f"--{name.replace('_', '-')} takes a positive integer")
        if self.checkpoint_every is not None and (not isinstance(self.checkpoint_every, int) or self.checkpoint_every <= 0):
            raise EntError(f"Invalid checkpoint_every {self.checkpoint_every!r}", "give a positive integer")
        if not 0.0 < float(self.rollback_lr_factor) <= 1.0:
            raise EntError(f"Invalid rollback_lr_factor {self.rollback_lr_factor!r}", "give a factor in (0, 1]")
        parse_windows(self.diag_windows)
        parse_faults(self.inject_faults)

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["extra"] = dict(self.extra)
        for name in ("lora_targets", "diag_windows", "inject_faults"):
            if record[name] is not None:
                record[name] = list(record[name])
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> RunConfig:
        """The config a run.json recorded (tuples restored)."""
        # a run recorded before a setting existed resumes with the behaviour it was started with
        values = {**LEGACY_DEFAULTS, **{k: v for k, v in record.items() if k in FIELD_NAMES}}
        for name in ("lora_targets", "diag_windows", "inject_faults"):
            if values.get(name) is not None:
                values[name] = tuple(values[name])
        return cls(**values)


FIELD_NAMES = frozenset(f.name for f in fields(RunConfig))
LEGACY_DEFAULTS = {"speed": "plain", "compile_layers": "off", "dropout_seeding": "stream", "probe_batching": "in-order"}
"""What a run.json written before these settings existed did (RunConfig.from_record)."""


def read_toml(path: Path, missing: str, fix: str) -> dict[str, Any]:
    """A TOML file's tables; a missing file (``missing`` names it) or invalid TOML is one line (exit 2)."""
    if not path.is_file():
        raise EntError(f"{missing} '{path}' does not exist", fix)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise EntError(f"{path}: invalid TOML ({exc})") from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML config: top-level keys (or a ``[run]`` table) named like the flags."""
    path = Path(path)
    data = read_toml(path, "Config file", "check the --config path")
    table = data.get("run", data)
    values: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in FIELD_NAMES or name == "extra":
            close = sorted(FIELD_NAMES - {"extra"})
            raise EntError(f"{path}: unknown setting '{key}'", f"known settings: {', '.join(close)}")
        values[name] = tuple(value) if name in ("lora_targets", "diag_windows", "inject_faults") else value
    return values


def resolve_run_config(
    model_defaults: Mapping[str, Any], file_values: Mapping[str, Any], flag_values: Mapping[str, Any]
) -> RunConfig:
    """Merge the three layers (flags win) into a validated RunConfig."""
    merged: dict[str, Any] = {}
    for layer in (model_defaults, file_values, flag_values):
        merged.update({k: v for k, v in layer.items() if v is not None})
    if "model" not in merged:
        raise EntError("No model given", "pass --model NAME (see `ent list-plugins --kind model`)")
    unknown = set(merged) - FIELD_NAMES
    if unknown:
        raise EntError(f"Unknown setting '{sorted(unknown)[0]}'")
    try:
        return RunConfig(**merged)
    except TypeError as exc:
        raise EntError(f"Invalid settings: {exc}") from None
