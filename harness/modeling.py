"""Loading a model plugin's weights, attaching LoRA, and reading pooled terminal-layer activations.

torch, transformers and peft are imported here, inside the functions, never at CLI start-up.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .config import PROBE_BATCH_SIZE, PROBE_BATCH_TOKEN_PROBES
from .errors import EntError
from .plugin_manager import Registry
from .specs import FamilySpec, ModelSpec, resolve_target


@dataclass
class LoadedModel:
    """A causal LM ready for training or diagnosis, with what a run records about it."""

    model: Any
    tokenizer: Any
    spec: ModelSpec
    family: FamilySpec
    quantization: str  # "nf4" (4-bit NF4, double quantisation, bf16 compute) or "none" (bf16 weights)
    device: Any
    weights_source: str
    tokenizer_source: str = ""  # where the tokenizer came from (a shape twin may fall back to the byte tokenizer)


def quiet_libraries() -> None:
    """Silence start-up chatter of the ML stack (progress bars, optional-kernel notices)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in ("bitsandbytes", "transformers", "peft", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="bitsandbytes")
    warnings.filterwarnings("ignore", module="peft")
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


def resolve_device(requested: str) -> Any:
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise EntError("--device cuda was asked for but no CUDA GPU is visible", "use --device cpu or auto")
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda":  # the current GPU by index (a data-parallel worker has set its own)
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device(requested)


def bitsandbytes_available() -> bool:
    try:
        import bitsandbytes  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means: no 4-bit path here
        return False
    return True


def resolve_quantization(requested: str) -> str:
    if requested == "none":
        return "none"
    available = bitsandbytes_available()
    if requested == "nf4" and not available:
        raise EntError("--quantize nf4 needs bitsandbytes", "pip install 'ent-harness[quant]' or use --quantize none")
    return "nf4" if available else "none"


def model_config(spec: ModelSpec) -> dict[str, Any]:
    value = resolve_target(spec.config)
    config = value() if callable(value) else value
    if isinstance(config, (str, Path)):
        import json

        config = json.loads(Path(config).read_text(encoding="utf-8"))
    if not isinstance(config, dict) or not config.get("architectures"):
        raise EntError(f"model '{spec.name}': its config names no architecture", "fix the model plugin's config")
    return dict(config)


def _bnb_config(family: FamilySpec | None = None) -> Any:
    """The family's 4-bit defaults (QLoRA: NF4, double quantisation, bf16 compute)."""
    from .weights import bnb_config

    if family is None:
        return bnb_config()
    return bnb_config(family.quant_type, family.double_quant, family.compute_dtype)


def family_for_config(registry: Registry, config: dict[str, Any], where: str) -> FamilySpec:
    """The family serving ``config.architectures[0]``; an unknown architecture is one line (exit 2)."""
    from .errors import UnknownComponentError

    architectures = config.get("architectures") or []
    if not architectures:
        raise EntError(f"The config of {where} names no architecture", "its config.json needs 'architectures'")
    architecture = architectures[0]
    try:
        return registry.family_for(architecture)
    except UnknownComponentError:
        known = sorted(spec.architecture for spec in registry.all("family"))
        raise EntError(
            f"No model family serves architecture '{architecture}' ({where})",
            f"known: {', '.join(known)}; a plugin adds one by registering a FamilySpec (see CONTRIBUTING.md)",
        ) from None


def _random_weight_checkpoint(spec: ModelSpec, config: dict[str, Any]) -> Path:
    """Build the model from its config with seeded random weights and save it once (tiny models only)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from .weights import cache_dir

    target = cache_dir("random-weights", f"{spec.name}-seed{spec.random_seed}")
    if (target / "config.json").is_file():
        return target
    hf_config = AutoConfig.for_model(**config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.random_seed)
        model = AutoModelForCausalLM.from_config(hf_config, dtype=torch.float32)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))  # beside the target: os.replace stays atomic
    model.save_pretrained(tmp, safe_serialization=True)
    try:
        os.replace(tmp, target)
    except OSError:  # another process won the race; its checkpoint is identical
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_model(spec: ModelSpec, registry: Registry, quantize: str = "auto", device: str = "auto",
               model_path: str | None = None, random_weights: bool = False,
               tokenizer_record: str | None = None) -> LoadedModel:
    """Load a model plugin's base model (4-bit NF4 where bitsandbytes allows, bf16 otherwise).

    Weights come from the hub id, from ``model_path`` (a local checkout), or, with ``random_weights``, from
    a seeded "shape twin" built from the plugin's config directly on the device (:mod:`.weights`); embedded
    models always use random weights (unless ``model_path`` is given). Every path ends in the same state:
    base frozen and prepared for k-bit training (:func:`_prepare_base`), 4-bit layers pinned
    (:func:`_pin_4bit_layers`), tokenizer padding never equal to EOS. ``tokenizer_record``: the tokenizer
    source a resumed run recorded (:func:`.weights.load_tokenizer` keeps it or stops with one line).
    """
    quiet_libraries()
    import torch
    from transformers import AutoModelForCausalLM

    from .weights import build_twin, resolve_source

    plugin_config = model_config(spec)
    source = resolve_source(spec, plugin_config, model_path, random_weights)
    family = family_for_config(registry, source.config, f"model '{spec.name}', {source.description}")
    torch_device = resolve_device(device)
    quantization = resolve_quantization(quantize)
    # The tokenizer first: a missing one is reported before any weights move.
    tokenizer, tokenizer_source = _load_tokenizer(spec, family, source, source.config.get("vocab_size"),
                                                  tokenizer_record)
    if source.kind == "twin":
        model = build_twin(source.config, spec.random_seed, torch_device,
                           _bnb_config(family) if quantization == "nf4" else None,
                           dtype=getattr(torch, family.compute_dtype))
    else:
        if source.kind == "embedded":
            checkpoint: str | Path = _random_weight_checkpoint(spec, plugin_config)
        else:
            checkpoint = source.location or ""
        kwargs: dict[str, Any] = {"dtype": torch.bfloat16}
        if quantization == "nf4":
            kwargs["quantization_config"] = _bnb_config(family)
            kwargs["device_map"] = {"": torch_device}
        try:
            model = AutoModelForCausalLM.from_pretrained(checkpoint, **kwargs)
        except OSError as exc:
            if source.kind == "hub":
                from .weights import hub_error

                raise hub_error(str(checkpoint), exc) from None
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise EntError(f"Could not load weights for '{spec.name}' from {checkpoint} ({first})") from None
        if quantization == "none":
            model.to(torch_device)
    model = _prepare_base(model, quantization)
    if quantization == "nf4":
        _pin_4bit_layers(model)
    return LoadedModel(model, tokenizer, spec, family, quantization, torch_device, source.description,
                       tokenizer_source)


def _load_tokenizer(spec: ModelSpec, family: FamilySpec, source: Any = None,
                    vocab_size: int | None = None, recorded: str | None = None) -> tuple[Any, str]:
    """The model's tokenizer with the family's padding side and a pad token distinct from EOS.

    Returns ``(tokenizer, where it came from)``. Pad = EOS would hide EOS from any loss that masks padding,
    so a pad that is missing or equal to EOS is replaced (:func:`ensure_distinct_pad`).
    """
    from .weights import WeightSource, load_tokenizer

    if source is None:
        kind = "embedded" if spec.embedded or spec.hub_id is None else "hub"
        source = WeightSource(kind, spec.hub_id, {}, "")
    tokenizer, described = load_tokenizer(spec, source, recorded)
    tokenizer.padding_side = family.padding_side
    ensure_distinct_pad(tokenizer, family, vocab_size)
    return tokenizer, described


PAD_TOKEN_ADDED = "<|ent_pad|>"


def ensure_distinct_pad(tokenizer: Any, family: FamilySpec, vocab_size: int | None = None) -> str:
    """Give ``tokenizer`` a pad token that is not EOS; returns how (``"kept"``, ``"family"``, ``"unk"``, ``"added"``).

    Order: the tokenizer's own pad if distinct from EOS; the family's ``pad_tokens`` that exist in the
    vocabulary; the unknown token; a new ``<|ent_pad|>`` token, only if its id fits in the embedding
    (``vocab_size`` rows: Qwen and DeepSeek have spare rows), so the model never needs resizing. Padding
    only appears in probe batches, where the attention mask removes it; training sequences are packed
    without padding, so the loss always sees EOS.
    """
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id
    if pad is not None and pad != eos:
        return "kept"
    unk = tokenizer.unk_token_id

    def usable(token_id: Any) -> bool:
        return (isinstance(token_id, int) and token_id != eos and (vocab_size is None or token_id < vocab_size))

    for token in family.pad_tokens:
        token_id = tokenizer.convert_tokens_to_ids(token)
        if usable(token_id) and (token_id != unk or token == tokenizer.unk_token):
            tokenizer.pad_token = token
            return "family"
    if tokenizer.unk_token is not None and usable(unk):
        tokenizer.pad_token = tokenizer.unk_token
        return "unk"
    if vocab_size is None or len(tokenizer) < vocab_size:
        tokenizer.add_special_tokens({"pad_token": PAD_TOKEN_ADDED})
        if usable(tokenizer.pad_token_id):
            return "added"
    raise EntError(
        "The tokenizer has no pad token distinct from EOS and no spare embedding row for one",
        "add the token to the family's pad_tokens (FamilySpec) or give the model plugin a tokenizer with a pad token",
    )


def _pin_4bit_layers(model: Any) -> int:
    """Fix the state bitsandbytes' ``Linear4bit`` would otherwise set on its first forward call.

    Left alone, a ``Linear4bit`` takes its compute dtype from the first input it sees (float32 after PEFT's
    k-bit preparation, so not the bf16 of QLoRA) and, on CPUs with AVX-512 bf16, repacks its weight for
    inference the first time it runs without gradients (a different kernel from training's). Either makes
    activations depend on what ran first. Here every 4-bit layer computes in bf16 and keeps one weight
    layout, for training, diagnostics and adapter reloads alike. Returns the number of layers pinned.
    """
    import bitsandbytes
    import torch
    from bitsandbytes.nn import Linear4bit
    from packaging.version import Version

    # bitsandbytes 0.50 casts a 4-bit layer's bias to the compute dtype (bf16) in its first forward; earlier
    # versions cast it to the input's dtype (float32 after PEFT's k-bit preparation), which it already has
    casts_bias_to_compute_dtype = Version(bitsandbytes.__version__).release >= (0, 50)
    pinned = 0
    for module in model.modules():
        if isinstance(module, Linear4bit):
            module.compute_dtype = torch.bfloat16
            module.compute_type_is_set = True
            if module.bias is not None and casts_bias_to_compute_dtype and module.bias.dtype != torch.bfloat16:
                # what Linear4bit.forward does to its bias on its first call, done here: the same values, and no
                # tensor mutation inside a compiled layer (a graph break in every biased projection)
                module.bias.data = module.bias.data.to(torch.bfloat16)
            if hasattr(module, "support_avx512bf16_for_cpu"):
                module.support_avx512bf16_for_cpu = False
            pinned += 1
    return pinned


def _prepare_base(model: Any, quantization: str) -> Any:
    """Put a freshly loaded base model in the numerical state LoRA training uses, before any forward pass.

    Base weights frozen; for a 4-bit base, PEFT's ``prepare_model_for_kbit_training`` (norms and embeddings in
    float32). Every path (training, ``ent diagnose --model``, adapter reloads) gets the model from
    :func:`load_model` in this state, so a reloaded adapter gives exactly the activations the run measured.
    """
    if quantization == "nf4":
        from peft import prepare_model_for_kbit_training

        return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    for param in model.parameters():
        param.requires_grad_(False)
    return model


def enable_checkpointing(model: Any) -> None:
    """Non-reentrant gradient checkpointing, with PEFT's fix: inputs that require grad (frozen embeddings)."""
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()


def attach_lora(loaded: LoadedModel, r: int, alpha: int, dropout: float, targets: tuple[str, ...] | None,
                gradient_checkpointing: bool = False) -> Any:
    """Wrap the model with PEFT LoRA adapters on the family's target modules (all seven linears)."""
    from peft import LoraConfig, get_peft_model

    model = loaded.model
    if gradient_checkpointing:
        enable_checkpointing(model)
    lora = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(targets or loaded.family.lora_targets),
        bias="none",
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, lora)
    loaded.model = peft_model
    return peft_model


def load_adapter(loaded: LoadedModel, folder: str | Path, trainable: bool = False,
                 gradient_checkpointing: bool = False) -> Any:
    """Apply a saved PEFT adapter (``adapters/step-N``) to a freshly loaded base model."""
    from peft import PeftModel

    folder = Path(folder)
    if not (folder / "adapter_config.json").is_file():
        raise EntError(f"'{folder}' is not a saved adapter folder", "point at RUN_DIR/adapters/step-N")
    if gradient_checkpointing:
        enable_checkpointing(loaded.model)
    loaded.model = PeftModel.from_pretrained(loaded.model, str(folder), is_trainable=trainable)
    return loaded.model


def _module_at(root: Any, path: str) -> Any:
    module = root
    for part in path.split("."):
        module = module[int(part)] if part.isdigit() else getattr(module, part)
    return module


def causal_lm(model: Any) -> Any:
    """The ``*ForCausalLM`` inside a PEFT wrapper (or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def terminal_activations(loaded: LoadedModel, texts: list[str], batch_size: int = PROBE_BATCH_SIZE, max_tokens: int = 256,
                         by_length: bool = True, batch_tokens: int | None = None) -> np.ndarray:
    """Pooled terminal-layer activations, one float64 row per text.

    Batches hold at most ``batch_size`` probes and ``batch_tokens`` padded tokens (default: 16 probes of
    ``max_tokens``, :data:`~ent_harness.config.PROBE_BATCH_TOKEN_PROBES`).

    The terminal layer is the family's (default: last decoder block after the final norm); pooling is the
    mean over non-padding tokens (or the last non-padding token). The language-model head is never run.
    Probes are tokenized once; each batch puts every probe's tokens at the start of its row whatever the
    tokenizer's padding side (:func:`right_padded`) and rotary positions come from the attention mask, so a
    probe is computed at the same positions, by the same kernel tiles, with a left- or right-padding
    tokenizer: the rows are identical bit for bit. (Left padding computed in place agrees only to the rounding of the bf16 4-bit matmuls, about 1e-3
    once an adapter is trained: a 1-ulp float32 difference before a bf16 cast becomes a bf16 ulp.)
    """
    import torch

    family = loaded.family
    lm = causal_lm(loaded.model)
    decoder = _module_at(lm, family.layers_path.rsplit(".", 1)[0])
    if family.terminal_layer == "final_norm":
        hooked = _module_at(lm, family.final_norm_path)
    else:
        hooked = _module_at(lm, family.layers_path)[-1]
    captured: list[Any] = []

    def keep_output(_module: Any, _inputs: Any, output: Any) -> None:
        captured.append(output[0] if isinstance(output, tuple) else output)

    tokenizer = loaded.tokenizer
    rows: list[Any] = []
    # ``by_length``: batches of similar length waste little on padding. Which probes share a batch changes the
    # GEMM shapes, so rows can differ in the last bf16 bits from another batching: a run records its batching
    # (``probe_batching``) and keeps it. Rows come back in the order of ``texts``.
    order = list(range(len(texts)))
    encoded = tokenizer(list(texts), truncation=True, max_length=max_tokens)["input_ids"]
    lengths = [len(ids) for ids in encoded]
    if by_length:
        order.sort(key=lambda i: lengths[i])
    cap = batch_tokens if batch_tokens is not None else PROBE_BATCH_TOKEN_PROBES * max_tokens
    batches = probe_batches([lengths[i] for i in order], batch_size, cap)
    was_training = loaded.model.training
    loaded.model.eval()
    handle = hooked.register_forward_hook(keep_output)
    try:
        # inference mode: less bookkeeping per op than no_grad, the same kernels; rows stay on the device until
        # the end, so the CPU queues the next batch while the GPU computes this one
        with torch.inference_mode(), eager_mode():
            for start, stop in batches:
                input_ids, mask = right_padded([encoded[i] for i in order[start:stop]], tokenizer.pad_token_id)
                input_ids, mask = input_ids.to(loaded.device), mask.to(loaded.device)
                captured.clear()
                decoder(input_ids=input_ids, attention_mask=mask, position_ids=position_ids_from_mask(mask),
                        use_cache=False)
                hidden = captured[-1].float()
                rows.append(pool(hidden, mask, family.pooling).double())
            pooled = torch.cat(rows).cpu().numpy() if rows else np.empty((0, 0))
    finally:
        handle.remove()
        if was_training:
            loaded.model.train()
    result = np.empty_like(pooled)
    result[order] = pooled
    return result


def probe_batches(lengths: list[int], batch_size: int, batch_tokens: int) -> list[tuple[int, int]]:
    """Consecutive ``(start, stop)`` ranges of at most ``batch_size`` items whose padded size (items x longest)
    stays within ``batch_tokens``; an item longer than ``batch_tokens`` gets a batch of its own."""
    ranges: list[tuple[int, int]] = []
    start, longest = 0, 0
    for index, length in enumerate(lengths):
        wider = max(longest, length)
        if index > start and (index - start >= batch_size or (index - start + 1) * wider > batch_tokens):
            ranges.append((start, index))
            start, wider = index, length
        longest = wider
    if start < len(lengths):
        ranges.append((start, len(lengths)))
    return ranges


def eager_mode() -> Any:
    """Run compiled modules eagerly (diagnostics must not depend on --compile); a no-op before torch 2.6."""
    import contextlib

    import torch

    set_stance = getattr(torch.compiler, "set_stance", None)
    return set_stance("force_eager") if set_stance is not None else contextlib.nullcontext()


def right_padded(sequences: list[list[int]], pad_id: int) -> tuple[Any, Any]:
    """Token id lists as one batch: each row's tokens at its start, then ``pad_id`` to the longest row; and the
    attention mask (1 on tokens, 0 on padding)."""
    import torch

    width = max((len(ids) for ids in sequences), default=0)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, ids in enumerate(sequences):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        mask[row, : len(ids)] = 1
    return input_ids, mask


def position_ids_from_mask(mask: Any) -> Any:
    """Rotary positions counted over real tokens only: ``cumsum(mask) - 1``, clamped at 0 (padding)."""
    return (mask.long().cumsum(dim=-1) - 1).clamp(min=0)


def pool(hidden: Any, mask: Any, how: str) -> Any:
    """Mean over non-padding tokens, or the last non-padding token (either padding side)."""
    import torch

    mask_f = mask.to(hidden.dtype).unsqueeze(-1)
    if how == "mean":
        return (hidden * mask_f).sum(dim=1) / mask_f.sum(dim=1).clamp(min=1.0)
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last = (positions * mask).argmax(dim=1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
