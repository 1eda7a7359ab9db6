"""Weight sources: a shape twin is in exactly the state a 4-bit checkpoint load would give; hub errors are one line."""

from __future__ import annotations

import pytest

pytest.importorskip("bitsandbytes")


def _compare_models(twin, reference) -> None:
    import torch

    twin_state, reference_state = twin.state_dict(), reference.state_dict()
    assert twin_state.keys() == reference_state.keys()
    for key, value in reference_state.items():
        other = twin_state[key]
        assert other.dtype == value.dtype and other.shape == value.shape, key
        assert torch.equal(other, value), key
    twin_modules, reference_modules = dict(twin.named_modules()), dict(reference.named_modules())
    assert twin_modules.keys() == reference_modules.keys()
    for name, module in reference_modules.items():
        assert type(twin_modules[name]) is type(module), name
    for name, param in reference.named_parameters():
        other = twin.get_parameter(name)
        assert type(other) is type(param) and other.requires_grad == param.requires_grad, name
        if type(param).__name__ == "Params4bit":
            for attr in ("quant_type", "blocksize", "compress_statistics", "bnb_quantized", "quant_storage"):
                assert getattr(other, attr) == getattr(param, attr), (name, attr)
    for name, buffer in reference.named_buffers():
        assert torch.equal(twin.get_buffer(name), buffer), name
    for attr in ("is_quantized", "is_loaded_in_4bit", "quantization_method", "training"):
        assert getattr(twin, attr, None) == getattr(reference, attr, None), attr
    assert type(twin.hf_quantizer) is type(reference.hf_quantizer)
    assert twin.config.quantization_config.to_dict() == reference.config.quantization_config.to_dict()


@pytest.mark.parametrize("family", ["qwen2", "llama"])
def test_a_4bit_twin_is_what_from_pretrained_gives_for_the_same_weights(family: str, tmp_path) -> None:
    """Same seed in bf16, saved and loaded with the QLoRA BitsAndBytesConfig == the twin quantised on the fly."""
    import torch
    from transformers import AutoModelForCausalLM

    from ent_harness.weights import bnb_config, build_twin
    from ent_plugins.models import tiny

    config = getattr(tiny, f"{family}_config")()
    if family == "qwen2":
        config = {**config, "tie_word_embeddings": True}  # tied embeddings must stay tied and unquantised
    twin = build_twin(config, seed=11, device="cpu", quantization_config=bnb_config())
    plain = build_twin(config, seed=11, device="cpu", quantization_config=None)
    assert all(p.dtype == torch.bfloat16 for p in plain.parameters())
    plain.save_pretrained(tmp_path / "ckpt")
    reference = AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt", dtype=torch.bfloat16,
                                                     quantization_config=bnb_config(),
                                                     device_map={"": torch.device("cpu")})
    _compare_models(twin, reference)
    if config.get("tie_word_embeddings"):
        assert twin.lm_head.weight is twin.model.embed_tokens.weight
    ids = torch.randint(0, 256, (2, 12))
    assert torch.equal(twin(ids).logits, reference(ids).logits)


def test_twins_are_seeded() -> None:
    import torch

    from ent_harness.weights import build_twin
    from ent_plugins.models.tiny import mistral_config

    first = build_twin(mistral_config(), seed=5, device="cpu")
    again = build_twin(mistral_config(), seed=5, device="cpu")
    other = build_twin(mistral_config(), seed=6, device="cpu")
    weight = "model.layers.1.mlp.up_proj.weight"
    assert torch.equal(first.get_parameter(weight), again.get_parameter(weight))
    assert not torch.equal(first.get_parameter(weight), other.get_parameter(weight))
    assert torch.all(first.get_parameter("model.norm.weight") == 1)


def test_hub_failures_become_one_line_with_the_fixes(monkeypatch) -> None:
    from huggingface_hub import errors

    from ent_harness import weights

    def make(cls):
        return cls.__new__(cls)  # no HTTP response needed: only the type matters

    monkeypatch.setattr(weights, "_hub_state", lambda: (False, "/cache", False))
    gated = weights.hub_error("meta-llama/Llama-3.1-8B", make(errors.GatedRepoError)).one_line()
    assert "gated" in gated and "no Hugging Face token" in gated and "HF_TOKEN" in gated and "--random-weights" in gated
    missing = weights.hub_error("org/nothing", make(errors.RepositoryNotFoundError)).one_line()
    assert "not found" in missing and "HF_TOKEN" in missing
    network = weights.hub_error("org/model", ConnectionError("Name or service not known")).one_line()
    assert "could not be fetched" in network and "/cache" in network and "--model-path" in network
    monkeypatch.setattr(weights, "_hub_state", lambda: (True, "/cache", True))
    offline = weights.hub_error("org/model", OSError("nope")).one_line()
    assert "offline mode is on" in offline and "hf download org/model" in offline
    for line in (gated, missing, network, offline):
        assert "\n" not in line
