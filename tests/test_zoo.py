"""The model zoo: exact parameter counts, shipped configs, tiny twins of every family, one-line load errors."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import pytest
from conftest import REPO_ROOT, run_ent

from ent_harness.cli import main
from ent_harness.plugin_manager import build_registry

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
LLAMA31_CONFIG = REPO_ROOT / "examples" / "ent-llama31" / "ent_llama31" / "configs" / "llama-3.1-8b.json"
SPEC_CONFIGS = Path("/work/shared/spec/configs")

# name: (hub id, architecture, hidden, layers, heads, kv heads, vocab, tied, exact parameter count)
ZOO = {
    "qwen2.5-coder-0.5b": ("Qwen/Qwen2.5-Coder-0.5B", "Qwen2ForCausalLM", 896, 24, 14, 2, 151936, True, 494_032_768),
    "qwen2.5-coder-1.5b": ("Qwen/Qwen2.5-Coder-1.5B", "Qwen2ForCausalLM", 1536, 28, 12, 2, 151936, True, 1_543_714_304),
    "qwen2.5-coder-3b": ("Qwen/Qwen2.5-Coder-3B", "Qwen2ForCausalLM", 2048, 36, 16, 2, 151936, True, 3_085_938_688),
    "qwen2.5-coder-7b": ("Qwen/Qwen2.5-Coder-7B", "Qwen2ForCausalLM", 3584, 28, 28, 4, 152064, False, 7_615_616_512),
    "qwen2.5-coder-14b": ("Qwen/Qwen2.5-Coder-14B", "Qwen2ForCausalLM", 5120, 48, 40, 8, 152064, False, 14_770_033_664),
    "qwen2.5-coder-32b": ("Qwen/Qwen2.5-Coder-32B", "Qwen2ForCausalLM", 5120, 64, 40, 8, 152064, False, 32_763_876_352),
    "codellama-7b": ("codellama/CodeLlama-7b-hf", "LlamaForCausalLM", 4096, 32, 32, 32, 32016, False, 6_738_546_688),
    "deepseek-coder-6.7b": ("deepseek-ai/deepseek-coder-6.7b-base", "LlamaForCausalLM", 4096, 32, 32, 32, 32256, False,
                            6_740_512_768),
    "mistral-7b-v0.3": ("mistralai/Mistral-7B-v0.3", "MistralForCausalLM", 4096, 32, 32, 8, 32768, False, 7_248_023_552),
}
LLAMA31 = ("meta-llama/Llama-3.1-8B", "LlamaForCausalLM", 4096, 32, 32, 8, 128256, False, 8_030_261_248)
SPEC_FILE = {
    "qwen2.5-coder-0.5b": "Qwen2.5-Coder-0.5B", "qwen2.5-coder-1.5b": "Qwen2.5-Coder-1.5B",
    "qwen2.5-coder-3b": "Qwen2.5-Coder-3B", "qwen2.5-coder-7b": "Qwen2.5-Coder-7B",
    "qwen2.5-coder-14b": "Qwen2.5-Coder-14B", "qwen2.5-coder-32b": "Qwen2.5-Coder-32B",
    "codellama-7b": "CodeLlama-7b-hf", "deepseek-coder-6.7b": "deepseek-coder-6.7b-base",
    "mistral-7b-v0.3": "Mistral-7B-v0.3", "llama-3.1-8b": "Llama-3.1-8B",
}


@pytest.fixture(scope="module")
def registry():
    return build_registry(entry_points=[])


def _configs(registry) -> dict[str, dict]:
    from ent_harness.modeling import model_config

    configs = {name: model_config(registry.get("model", name)) for name in ZOO}
    configs["llama-3.1-8b"] = json.loads(LLAMA31_CONFIG.read_text())
    return configs


# ---- the shipped plugins ----------------------------------------------------------------------------

def test_every_zoo_plugin_has_its_hub_id_and_exact_config(registry) -> None:
    configs = _configs(registry)
    expected = {**ZOO, "llama-3.1-8b": LLAMA31}
    for name, (hub_id, arch, hidden, layers, heads, kv, vocab, tied, _) in expected.items():
        config = configs[name]
        if name in ZOO:
            spec = registry.get("model", name)
            assert spec.hub_id == hub_id and not spec.embedded and spec.distribution == "ent-harness"
        assert config["architectures"] == [arch], name
        assert (config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"],
                config["num_key_value_heads"], config["vocab_size"], config["tie_word_embeddings"]) == (
            hidden, layers, heads, kv, vocab, tied), name
        registry.family_for(arch)  # every architecture has a family
        spec_file = SPEC_CONFIGS / f"{SPEC_FILE[name]}.json"
        if spec_file.is_file():  # the gathered model facts, where this checkout has them
            assert config == json.loads(spec_file.read_text()), name


def test_parameter_counts_are_exact_for_all_ten_models(registry) -> None:
    from ent_harness.planning import count_parameters

    expected = {**ZOO, "llama-3.1-8b": LLAMA31}
    for name, config in _configs(registry).items():
        counts, shapes, _ = count_parameters(config, LORA_TARGETS, 64)
        assert counts.total == expected[name][-1], name
        assert counts.lm_head == (0 if shapes.tied else counts.embedding), name
        assert counts.total == counts.embedding + counts.lm_head + counts.layers * counts.per_layer + counts.other
        assert counts.lora_modules == 7 * shapes.layers
    # LoRA r=64 on the seven linears of Qwen2.5-Coder-32B: 64 x (2(5120+5120) + 2(5120+1024) + 3(5120+27648)) x 64
    counts, _, _ = count_parameters(_configs(registry)["qwen2.5-coder-32b"], LORA_TARGETS, 64)
    assert counts.lora_trainable == 64 * (2 * 10240 + 2 * 6144 + 3 * 32768) * 64 == 536_870_912


def test_plan_json_gives_total_and_trainable_params(capsys) -> None:
    main(["plan", "--model", "deepseek-coder-6.7b", "--json", "--batch", "2", "--seq-len", "512"])
    result = json.loads(capsys.readouterr().out)
    assert result["total_params"] == 6_740_512_768
    assert result["trainable_params"] == 64 * (4 * (4096 + 4096) + 3 * (4096 + 11008)) * 32
    memory = result["memory"]
    with_gc, without_gc = memory["with_checkpointing"], memory["without_checkpointing"]
    assert 0 < with_gc["total"] < without_gc["total"]
    quantized = result["params"]["quantized"]
    assert memory["terms"]["weights_4bit"] == pytest.approx(quantized * (0.5 + 1 / 64 + 4 / 16384), rel=1e-4)
    assert memory["terms"]["weights_not_quantized"] == 4 * (result["total_params"] - quantized)
    assert memory["terms"]["logits_backward"] == 12 * 2 * 512 * 32256
    assert set(result["constants"]) >= {"NF4_BYTES_PER_PARAM", "CUDA_CONTEXT_GIB", "LOGITS_BACKWARD_BYTES"}


def test_the_example_llama31_plugin_is_listed_with_its_own_distribution() -> None:
    try:
        importlib.metadata.distribution("ent-llama31")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("examples/ent-llama31 is not installed (pip install -e examples/ent-llama31)")
    rows = json.loads(run_ent("list-plugins", "--json", "--kind", "model").stdout)
    row = next(row for row in rows if row["name"] == "llama-3.1-8b")
    assert (row["distribution"], row["plugin"], row["status"]) == ("ent-llama31", "llama31", "ok")


# ---- tiny twins of every family (acceptance 2) ---------------------------------------------------------

TEXTS = ["def add(a, b):\n    return a + b\n", "x = 1", "The quick brown fox jumps over the lazy dog.", "for i in range(3): print(i)"]


@pytest.mark.parametrize("family", ["qwen2", "llama", "mistral"])
def test_tiny_twin_loads_in_4bit_lora_lands_on_the_seven_linears_and_pooling_is_padding_free(family, registry) -> None:
    pytest.importorskip("bitsandbytes")
    import numpy as np
    import torch
    from bitsandbytes.nn import Linear4bit, Params4bit

    from ent_harness.modeling import attach_lora, load_model, pool, position_ids_from_mask, terminal_activations
    from ent_harness.specs import ModelSpec

    spec = ModelSpec(name=f"twin-{family}", config=f"ent_plugins.models.tiny:{family}_config",
                     hub_id="ent-test/not-on-the-hub", random_seed=7)
    loaded = load_model(spec, registry, quantize="nf4", device="cpu", random_weights=True)
    assert loaded.weights_source.startswith("shape twin") and "byte-level" in loaded.tokenizer_source
    model = loaded.model
    n_layers = model.config.num_hidden_layers
    expected = {f"model.layers.{i}.{part}.{name}" for i in range(n_layers)
                for part, names in (("self_attn", LORA_TARGETS[:4]), ("mlp", LORA_TARGETS[4:])) for name in names}
    four_bit = {name for name, module in model.named_modules() if isinstance(module, Linear4bit)}
    assert four_bit == expected
    for name in expected:
        weight = model.get_submodule(name).weight
        assert isinstance(weight, Params4bit) and weight.quant_type == "nf4" and weight.compress_statistics
        assert weight.bnb_quantized and weight.dtype == torch.uint8
    assert model.is_loaded_in_4bit and not isinstance(model.lm_head, Linear4bit)

    # Left padding computed in place: positions from the mask make it agree with right padding.
    tokenizer = loaded.tokenizer
    rows = {}
    for side in ("right", "left"):
        tokenizer.padding_side = side
        batch = tokenizer(TEXTS, return_tensors="pt", padding=True)
        with torch.no_grad():
            hidden = model.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                 position_ids=position_ids_from_mask(batch["attention_mask"])).last_hidden_state
        rows[side] = pool(hidden.float(), batch["attention_mask"], "mean").double().numpy()
    assert batch["attention_mask"][:, 0].min() == 0  # really left-padded
    np.testing.assert_allclose(rows["left"], rows["right"], rtol=0, atol=1e-5)
    tokenizer.padding_side = "right"

    peft_model = attach_lora(loaded, r=8, alpha=16, dropout=0.05, targets=None)
    adapted = {name.removeprefix("base_model.model.") for name, module in peft_model.named_modules()
               if hasattr(module, "lora_A") and not name.endswith(("lora_A", "lora_B"))}
    assert adapted == expected
    trainable = {name for name, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in name or ".lora_B." in name for name in trainable)
    assert len(trainable) == 2 * len(expected)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # make the adapter count: B is zero at initialisation
        for name, param in peft_model.named_parameters():
            if ".lora_B." in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.05)

    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert tokenizer.padding_side == "right"
    pooled = terminal_activations(loaded, TEXTS, batch_size=4)
    peft_model.eval()
    batch = tokenizer(TEXTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = peft_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True)
    reference = pool(out.hidden_states[-1].float(), batch["attention_mask"], "mean").double().numpy()
    assert pooled.dtype == np.float64 and pooled.shape == (len(TEXTS), model.config.hidden_size)
    np.testing.assert_allclose(pooled, reference, rtol=0, atol=1e-6)

    tokenizer.padding_side = "left"
    left = terminal_activations(loaded, TEXTS, batch_size=4)
    assert batch["attention_mask"].min() == 0  # the batch really is padded
    np.testing.assert_allclose(left, pooled, rtol=0, atol=1e-5)
    tokenizer.padding_side = "right"


def test_position_ids_count_real_tokens_only() -> None:
    import torch

    from ent_harness.modeling import position_ids_from_mask, right_padded

    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    assert position_ids_from_mask(mask).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4], [0, 1, 1, 1, 1]]
    aligned_ids, aligned_mask = right_padded([[1, 2, 3], [1, 2, 3, 4, 5], [7, 8]], pad_id=9)
    assert aligned_ids.tolist() == [[1, 2, 3, 9, 9], [1, 2, 3, 4, 5], [7, 8, 9, 9, 9]]
    assert aligned_mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    assert [t.shape for t in right_padded([[], []], pad_id=9)] == [(2, 0), (2, 0)]  # nothing but padding


# ---- EOS stays visible to the loss ----------------------------------------------------------------------

def _word_tokenizer(tokens: list[str], eos: str, pad: str | None, unk: str | None = None):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate(tokens)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    kwargs = {"eos_token": eos, "pad_token": pad}
    if unk:
        kwargs["unk_token"] = unk
    return PreTrainedTokenizerFast(tokenizer_object=backend, **kwargs)


def test_pad_never_equals_eos(registry) -> None:
    from ent_harness.errors import EntError
    from ent_harness.modeling import PAD_TOKEN_ADDED, ensure_distinct_pad

    qwen2, llama, mistral = (registry.get("family", name) for name in ("qwen2", "llama", "mistral"))
    # Qwen2.5 base: pad = EOS = <|endoftext|>; the family's <|fim_pad|> takes over.
    tok = _word_tokenizer(["a", "b", "<|endoftext|>", "<|fim_pad|>"], "<|endoftext|>", "<|endoftext|>")
    assert ensure_distinct_pad(tok, qwen2, vocab_size=8) == "family"
    assert tok.pad_token == "<|fim_pad|>" and tok.pad_token_id != tok.eos_token_id
    # Mistral / CodeLlama: no pad token, an <unk> distinct from EOS.
    tok = _word_tokenizer(["<unk>", "<s>", "</s>", "a"], "</s>", None, unk="<unk>")
    assert ensure_distinct_pad(tok, mistral, vocab_size=4) == "family" and tok.pad_token_id == 0
    # DeepSeek-Coder: none of the candidates, no unk, spare embedding rows: a new pad token in a spare row.
    tok = _word_tokenizer(["a", "b", "<eos>"], "<eos>", None)
    assert ensure_distinct_pad(tok, llama, vocab_size=8) == "added"
    assert tok.pad_token == PAD_TOKEN_ADDED and tok.pad_token_id == 3 and tok.pad_token_id != tok.eos_token_id
    # No spare row: refuse rather than pad with EOS.
    tok = _word_tokenizer(["a", "b", "<eos>"], "<eos>", "<eos>")
    with pytest.raises(EntError, match="distinct from EOS"):
        ensure_distinct_pad(tok, llama, vocab_size=3)


DOCS = ["short doc", "another document", "x" * 40]


def test_training_sequences_keep_eos_in_the_loss(registry) -> None:
    from ent_harness.data import PackedSequences
    from ent_harness.modeling import _load_tokenizer

    for name in ("tiny-qwen2", "tiny-llama", "tiny-mistral"):
        spec = registry.get("model", name)
        tokenizer, source = _load_tokenizer(spec, registry.get("family", name.removeprefix("tiny-")))
        assert tokenizer.pad_token_id is not None and tokenizer.pad_token_id != tokenizer.eos_token_id, source
        packed = PackedSequences(lambda: iter(DOCS * 20), tokenizer, seq_len=32)
        sequences = [next(packed) for _ in range(8)]
        flat = [token for sequence in sequences for token in sequence]
        # Packed without padding: every position is a label (the trainer passes labels=input_ids), EOS included.
        assert all(len(sequence) == 32 for sequence in sequences)
        assert tokenizer.eos_token_id in flat and tokenizer.pad_token_id not in flat


# ---- one-line errors (acceptance 4) -----------------------------------------------------------------------

def _one_line_exit_2(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as stopped:
        main(args)
    captured = capsys.readouterr()
    assert stopped.value.code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


def test_a_missing_local_path_exits_2_with_one_line(tmp_path, capsys) -> None:
    line = _one_line_exit_2(["diagnose", "--model", "tiny-qwen2", "--model-path", str(tmp_path / "nowhere")], capsys)
    assert "does not exist" in line and "nowhere" in line
    empty = tmp_path / "empty"
    empty.mkdir()
    line = _one_line_exit_2(["diagnose", "--model", "tiny-qwen2", "--model-path", str(empty)], capsys)
    assert "no config.json" in line


def test_an_architecture_no_family_knows_exits_2_with_one_line(tmp_path, capsys) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}))
    line = _one_line_exit_2(["diagnose", "--model", "tiny-llama", "--model-path", str(tmp_path)], capsys)
    assert "GPT2LMHeadModel" in line and "LlamaForCausalLM" in line and "FamilySpec" in line


def test_an_unreachable_hub_id_exits_2_with_one_line(tmp_path) -> None:
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "HF_TOKEN": ""}
    result = run_ent("diagnose", "--model", "qwen2.5-coder-0.5b", env=env, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "Qwen/Qwen2.5-Coder-0.5B" in lines[0] and "offline" in lines[0] and "--random-weights" in lines[0]
