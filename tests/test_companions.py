"""Companion streams: real sources with a fixed offline fallback, offline text, packing and the mixing share."""

from __future__ import annotations

import itertools
import json
import re
import types

import pytest

from conftest import run_ent
from ent_harness.data import MixedBatches, PackedSequences
from ent_harness.hookspecs import hookimpl
from ent_harness.plugin_manager import build_registry, get_registry
from ent_harness.specs import CompanionSpec, resolve_target
from ent_plugins.companions import hub
from ent_plugins.companions.sources import DATASETS

TEXT_STREAMS = ("code", "nl", "math", "creative")
KB200 = 200_000


def _documents(name: str, seed: int, offline: bool = True):
    spec = get_registry().get("companion", name)
    return resolve_target(spec.documents)(seed, offline)


def _take_bytes(stream, limit: int) -> list[str]:
    docs, total = [], 0
    for doc in stream:
        docs.append(doc)
        total += len(doc.encode("utf-8"))
        if total >= limit:
            break
    return docs


def _sentences(docs: list[str]) -> set[str]:
    return {s.strip() for doc in docs for s in re.split(r"(?<=[.!?])\s+|\n", doc) if s.strip()}


# ---------------------------------------------------------------------------------------------------------
# registration
# ---------------------------------------------------------------------------------------------------------
def test_every_companion_names_a_real_dataset_and_an_offline_source() -> None:
    registry = get_registry()
    assert {"code", "nl", "math", "creative", "none"} <= set(registry.names("companion"))
    for name in TEXT_STREAMS:
        spec = registry.get("companion", name)
        assert spec.dataset == DATASETS[name]
        for key in ("id", "split", "text_field", "licence"):
            assert spec.dataset.get(key), (name, key)
        assert spec.offline_source


def test_a_third_party_companion_registers_through_the_hook_and_streams() -> None:
    def register_companions(register):
        register(CompanionSpec(name="poetry-x", documents="ent_plugins.companions.sources:creative_documents",
                               description="a third party's companion"))

    module = types.ModuleType("ent_poetry_x")
    module.register_companions = hookimpl(register_companions)
    registry = build_registry(extra_plugins=[("poetry-x", module)])
    spec = registry.get("companion", "poetry-x")
    assert spec.plugin == "poetry-x"
    from ent_plugins.models.byte_tokenizer import build_byte_tokenizer

    packed = PackedSequences(lambda: resolve_target(spec.documents)(0, True), build_byte_tokenizer(), 32)
    assert all(len(next(packed)) == 32 for _ in range(10))


# ---------------------------------------------------------------------------------------------------------
# offline sources
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", TEXT_STREAMS)
def test_offline_source_gives_200kb_of_distinct_text_and_says_so(name: str) -> None:
    stream = _documents(name, seed=0)
    assert stream.source.startswith("offline: ") and "--offline" in stream.source
    docs = _take_bytes(stream, KB200)
    assert sum(len(d.encode("utf-8")) for d in docs) >= KB200
    assert len(set(docs)) == len(docs), "a document repeats within the first 200 KB"
    # not one template with a few words swapped: at least half of the text is sentences (lines) seen once
    assert sum(len(s.encode("utf-8")) for s in _sentences(docs)) >= KB200 // 2


@pytest.mark.parametrize("name", TEXT_STREAMS)
def test_offline_source_is_deterministic_for_a_seed_and_differs_between_seeds(name: str) -> None:
    first = list(itertools.islice(_documents(name, seed=5), 8))
    again = list(itertools.islice(_documents(name, seed=5), 8))
    other = list(itertools.islice(_documents(name, seed=6), 8))
    assert first == again
    assert first != other


def test_generated_documents_stay_distinct_far_beyond_200kb() -> None:
    for name in ("nl", "math", "creative"):
        docs = _take_bytes(_documents(name, seed=3), 1_000_000)
        assert len(set(docs)) == len(docs), name


def test_the_none_companion_is_empty() -> None:
    assert list(_documents("none", seed=0)) == []


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"])
def test_an_offline_environment_variable_keeps_the_hub_out(monkeypatch, variable: str) -> None:
    for name in hub.OFFLINE_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, "1")

    def must_not_load(*args):
        raise AssertionError("the hub was used although it is switched off")

    stream = hub.open_stream(DATASETS["nl"], 0, False, lambda seed: iter(["offline text"]), "label",
                             loader=must_not_load, revision_resolver=must_not_load)
    assert stream.source == f"offline: label (hub not used: {variable}=1)"
    assert next(stream) == "offline text"


# ---------------------------------------------------------------------------------------------------------
# the hub path, with a fake dataset (the real API is exercised below on local files)
# ---------------------------------------------------------------------------------------------------------
class FakeStreamingDataset:
    """Enough of ``datasets.IterableDataset`` for the stream: iteration, ``set_epoch``, a seeded order."""

    def __init__(self, rows: list[dict], seed: int) -> None:
        self.rows, self.seed, self.epoch = rows, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        import random

        order = list(self.rows)
        random.Random(self.seed + self.epoch).shuffle(order)
        return iter(order)


@pytest.fixture
def hub_allowed(monkeypatch):
    for name in hub.OFFLINE_ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def _fake_loader(rows: list[dict], calls: list | None = None):
    def loader(dataset, revision, seed, buffer_size):
        if calls is not None:
            calls.append((dataset["id"], revision, seed))
        return FakeStreamingDataset(rows, seed)

    return loader


def test_hub_stream_records_dataset_revision_and_licence_and_is_seeded(hub_allowed) -> None:
    rows = [{"text": f"document {i}"} for i in range(20)] + [{"text": ""}]
    calls: list = []
    dataset = {"id": "org/corpus", "split": "train", "text_field": "text", "licence": "CC0-1.0"}

    def open_it(seed):
        return hub.open_stream(dataset, seed, False, lambda s: iter(["offline"]), "offline label",
                               loader=_fake_loader(rows, calls), revision_resolver=lambda d: "0123456789abcdef")

    stream = open_it(7)
    assert stream.source.startswith("hub: org/corpus train @ 0123456789ab")
    assert "CC0-1.0" in stream.source and "seed 7" in stream.source
    first_epoch = list(itertools.islice(stream, 20))
    assert sorted(first_epoch) == sorted(r["text"] for r in rows if r["text"])  # every document once, none empty
    second_epoch = list(itertools.islice(stream, 20))
    assert sorted(second_epoch) == sorted(first_epoch) and second_epoch != first_epoch  # reshuffled epoch
    assert list(itertools.islice(open_it(7), 20)) == first_epoch  # re-creatable: the same order again
    assert list(itertools.islice(open_it(8), 20)) != first_epoch
    assert calls[0] == ("org/corpus", "0123456789abcdef", 7)


def test_an_unreachable_hub_falls_back_once_with_a_one_line_reason(hub_allowed) -> None:
    def unreachable(dataset):
        raise ConnectionError("Failed to resolve 'huggingface.co'\n(name or service not known)")

    stream = hub.open_stream(DATASETS["math"], 0, False, lambda seed: iter(["a", "b"]), "worked problems",
                             loader=_fake_loader([]), revision_resolver=unreachable)
    assert stream.source.startswith("offline: worked problems (hub unreachable: ConnectionError: Failed to resolve")
    assert "\n" not in stream.source
    assert list(stream) == ["a", "b"]


def test_a_dataset_without_the_text_field_falls_back_naming_the_field(hub_allowed) -> None:
    dataset = {"id": "org/corpus", "split": "train", "text_field": "content"}
    stream = hub.open_stream(dataset, 0, False, lambda seed: iter(["x"]), "label",
                             loader=_fake_loader([{"body": "y"}]), revision_resolver=lambda d: "abc")
    assert "no field 'content' (found: body)" in stream.source


def test_real_datasets_streaming_api_on_local_files(hub_allowed, tmp_path) -> None:
    """The calls ``load_hub_dataset`` makes (load_dataset streaming, shuffle, set_epoch) against the
    installed ``datasets`` library, on a local three-shard JSON Lines dataset."""
    pytest.importorskip("datasets")
    (tmp_path / "data").mkdir()
    texts = []
    for shard in range(3):
        lines = []
        for i in range(40):
            texts.append(f"shard {shard} document {i}")
            lines.append(json.dumps({"text": texts[-1], "n": i}))
        (tmp_path / "data" / f"train-{shard}.jsonl").write_text("\n".join(lines) + "\n")
    dataset = {"id": str(tmp_path), "split": "train", "text_field": "text", "licence": "test"}

    def open_it(seed):
        return hub.open_stream(dataset, seed, False, lambda s: iter(["offline"]), "label", buffer_size=16,
                               revision_resolver=lambda d: "main")

    stream = open_it(11)
    assert stream.source.startswith("hub: "), stream.source
    epoch0 = list(itertools.islice(stream, len(texts)))
    assert sorted(epoch0) == sorted(texts)
    epoch1 = list(itertools.islice(stream, len(texts)))
    assert sorted(epoch1) == sorted(texts) and epoch1 != epoch0
    assert list(itertools.islice(open_it(11), 30)) == epoch0[:30]
    assert list(itertools.islice(open_it(12), 30)) != epoch0[:30]


# ---------------------------------------------------------------------------------------------------------
# packing and mixing
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def byte_tokenizer():
    from ent_plugins.models.byte_tokenizer import build_byte_tokenizer

    return build_byte_tokenizer()


def _mixed(tokenizer, share: float, seed: int, seq_len: int = 16, batch_size: int = 50) -> MixedBatches:
    primary = PackedSequences(lambda: _documents("code", seed), tokenizer, seq_len)
    companion = PackedSequences(lambda: _documents("nl", seed + 1), tokenizer, seq_len)
    return MixedBatches(primary, companion, share, batch_size, seed)


def _sequences(batches: MixedBatches, count: int) -> list[list[int]]:
    rows: list[list[int]] = []
    while len(rows) < count:
        rows.extend(batches.next_batch())
    return rows


@pytest.mark.parametrize("share", [0.5, 0.2])
def test_companion_share_over_10000_packed_sequences_is_within_two_points(byte_tokenizer, share: float) -> None:
    batches = _mixed(byte_tokenizer, share, seed=0)
    rows = _sequences(batches, 10_000)
    assert len(rows) == 10_000 and all(len(row) == 16 for row in rows)  # fixed length: no padding
    assert abs(batches.companion_fraction - share) <= 0.02, batches.companion_fraction


def test_the_same_seed_gives_the_same_sequences_and_another_seed_others(byte_tokenizer) -> None:
    first = _sequences(_mixed(byte_tokenizer, 0.5, seed=1), 10_000)
    again = _sequences(_mixed(byte_tokenizer, 0.5, seed=1), 10_000)
    other = _sequences(_mixed(byte_tokenizer, 0.5, seed=2), 10_000)
    assert first == again
    assert first != other


def test_packing_neither_repeats_nor_skips_text(byte_tokenizer) -> None:
    """The packed tokens are exactly the documents, in order, each followed by EOS."""
    seq_len = 64
    packed = PackedSequences(lambda: _documents("creative", 4), byte_tokenizer, seq_len)
    tokens = [t for _ in range(400) for t in next(packed)]
    expected: list[int] = []
    for doc in _documents("creative", 4):
        expected.extend(byte_tokenizer(doc, add_special_tokens=False)["input_ids"] + [byte_tokenizer.eos_token_id])
        if len(expected) >= len(tokens):
            break
    assert tokens == expected[: len(tokens)]


def test_a_resumed_stream_continues_exactly(byte_tokenizer) -> None:
    """Resume re-creates each stream from its factory and fast-forwards it by document count."""
    reference = _mixed(byte_tokenizer, 0.5, seed=3)
    for _ in range(40):
        reference.next_batch()
    state = json.loads(json.dumps(reference.state()))
    expected = [reference.next_batch() for _ in range(40)]
    resumed = _mixed(byte_tokenizer, 0.5, seed=3)
    resumed.restore(state)
    assert [resumed.next_batch() for _ in range(40)] == expected


# ---------------------------------------------------------------------------------------------------------
# a whole run with no network
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_run_with_no_network_uses_the_offline_sources_and_records_them(tmp_path) -> None:
    out = tmp_path / "run"
    # the hub is allowed but points at a closed local port: every stream must fall back, and say why
    env = {"HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}
    result = run_ent("run", "--model", "tiny-qwen2", "--companion", "creative", "--steps", "2", "--diag-every", "2",
                     "--seq-len", "32", "--batch-size", "2", "--seed", "1", "--quantize", "none", "--out", str(out),
                     env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "finished"
    primary, companion = record["data_sources"]["primary"]["source"], record["data_sources"]["companion"]["source"]
    assert primary.startswith("offline: the Python") and "standard library" in primary
    assert companion.startswith("offline: stories, fables")
    for source in (primary, companion):
        assert "hub unreachable" in source or "datasets library is not installed" in source, source
