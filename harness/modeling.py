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
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
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


def _bnb_config() -> Any:
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def _random_weight_checkpoint(spec: ModelSpec, config: dict[str, Any]) -> Path:
    """Build the model from its config with seeded random weights and save it once (tiny models only)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cache_root = Path(os.environ.get("ENT_CACHE", Path(tempfile.gettempdir()) / "ent-cache"))
    target = cache_root / "random-weights" / f"{spec.name}-seed{spec.random_seed}"
    if (target / "config.json").is_file():
        return target
    hf_config = AutoConfig.for_model(**config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.random_seed)
        model = AutoModelForCausalLM.from_config(hf_config, dtype=torch.float32)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent if target.parent.exists() else None))
    target.parent.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(tmp, safe_serialization=True)
    try:
        os.replace(tmp, target)
    except OSError:  # another process won the race; its checkpoint is identical
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_model(spec: ModelSpec, registry: Registry, quantize: str = "auto", device: str = "auto",
               model_path: str | None = None, random_weights: bool = False) -> LoadedModel:
    """Load a model plugin's base model (4-bit NF4 where bitsandbytes allows, bf16 otherwise).

    Weights come from the hub id, from ``model_path`` (a local checkout), or, with ``random_weights``, from
    a seeded "shape twin" built from the plugin's config; embedded models always use random weights.
    """
    quiet_libraries()
    import torch
    from transformers import AutoModelForCausalLM

    config = model_config(spec)
    family = registry.family_for(config["architectures"][0])
    torch_device = resolve_device(device)
    quantization = resolve_quantization(quantize)
    if spec.embedded or spec.hub_id is None:
        source: str | Path = _random_weight_checkpoint(spec, config)
        weights_source = f"random weights from the plugin's config (seed {spec.random_seed})"
    else:
        source = spec.hub_id
        weights_source = f"hub:{spec.hub_id}"
    kwargs: dict[str, Any] = {"dtype": torch.bfloat16}
    if quantization == "nf4":
        kwargs["quantization_config"] = _bnb_config()
        kwargs["device_map"] = {"": torch_device}
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except OSError as exc:
        raise EntError(f"Could not load weights for '{spec.name}' from {source} ({str(exc).splitlines()[0]})") from None
    if quantization == "none":
        model.to(torch_device)
    model = _prepare_base(model, quantization)
    tokenizer = _load_tokenizer(spec, family)
    if quantization == "nf4":
        _pin_4bit_layers(model)
    return LoadedModel(model, tokenizer, spec, family, quantization, torch_device, weights_source)


def _load_tokenizer(spec: ModelSpec, family: FamilySpec) -> Any:
    if spec.tokenizer:
        tokenizer = resolve_target(spec.tokenizer)()
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(spec.hub_id)
    tokenizer.padding_side = family.padding_side
    if tokenizer.pad_token_id is None:
        # Padding only ever appears in probe batches, where the attention mask removes it; training
        # sequences are packed (no padding), so the loss always sees EOS.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _pin_4bit_layers(model: Any) -> int:
    """Fix the state bitsandbytes' ``Linear4bit`` would otherwise set on its first forward call.

    Left alone, a ``Linear4bit`` takes its compute dtype from the first input it sees (float32 after PEFT's
    k-bit preparation, so not the bf16 of QLoRA) and, on CPUs with AVX-512 bf16, repacks its weight for
    inference the first time it runs without gradients (a different kernel from training's). Either makes
    activations depend on what ran first. Here every 4-bit layer computes in bf16 and keeps one weight
    layout, for training, diagnostics and adapter reloads alike. Returns the number of layers pinned.
    """
    import torch
    from bitsandbytes.nn import Linear4bit

    pinned = 0
    for module in model.modules():
        if isinstance(module, Linear4bit):
            module.compute_dtype = torch.bfloat16
            module.compute_type_is_set = True
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


def terminal_activations(loaded: LoadedModel, texts: list[str], batch_size: int = 16, max_tokens: int = 256) -> np.ndarray:
    """Pooled terminal-layer activations, one float64 row per text.

    The terminal layer is the family's (default: last decoder block after the final norm); pooling is the
    mean over non-padding tokens (or the last non-padding token). The language-model head is never run.
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
    rows: list[np.ndarray] = []
    was_training = loaded.model.training
    loaded.model.eval()
    handle = hooked.register_forward_hook(keep_output)
    try:
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                batch = tokenizer(
                    texts[start : start + batch_size],
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                    max_length=max_tokens,
                )
                input_ids = batch["input_ids"].to(loaded.device)
                mask = batch["attention_mask"].to(loaded.device)
                captured.clear()
                decoder(input_ids=input_ids, attention_mask=mask, use_cache=False)
                hidden = captured[-1].float()
                rows.append(pool(hidden, mask, family.pooling).double().cpu().numpy())
    finally:
        handle.remove()
        if was_training:
            loaded.model.train()
    return np.concatenate(rows, axis=0)


def pool(hidden: Any, mask: Any, how: str) -> Any:
    """Mean over non-padding tokens, or the last non-padding token (either padding side)."""
    import torch

    mask_f = mask.to(hidden.dtype).unsqueeze(-1)
    if how == "mean":
        return (hidden * mask_f).sum(dim=1) / mask_f.sum(dim=1).clamp(min=1.0)
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last = (positions * mask).argmax(dim=1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
