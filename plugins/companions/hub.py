"""Real sources: public datasets streamed with the ``datasets`` library, with a fixed offline fallback.

:func:`open_stream` decides once, before the first document, which source a stream uses:

- the hub dataset named in the companion's spec (``datasets.load_dataset(..., streaming=True)``, then
  ``.shuffle(seed=seed, buffer_size=...)``), pinned to the dataset revision resolved at open time, when the
  hub is allowed and answers (the first document is read as the probe);
- otherwise the companion's offline source, with the reason in one line: ``--offline``, ``HF_HUB_OFFLINE`` /
  ``HF_DATASETS_OFFLINE``, ``datasets`` not installed, or the hub's error.

A stream never switches source after it has started: an error in the middle of a hub stream is raised,
not papered over with offline text. The returned iterator carries ``.source`` (what ``run.json`` records).
The same seed and the same dataset revision give the same documents in the same order, so a resumed run
re-creates the stream and fast-forwards it by document count.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

SHUFFLE_BUFFER = 10_000
"""Documents held by the streaming shuffle buffer (``IterableDataset.shuffle(buffer_size=...)``)."""

HUB_PROBE_TIMEOUT_S = 15.0
"""How long the first call to the hub (resolving the dataset's revision) may take before falling back."""

OFFLINE_ENV_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
_TRUE = frozenset({"1", "on", "yes", "true"})


class DocumentStream:
    """An iterator of documents that says where its text comes from (``source``, recorded by the run)."""

    def __init__(self, documents: Iterator[str], source: str) -> None:
        self._documents = documents
        self.source = source

    def __iter__(self) -> DocumentStream:
        return self

    def __next__(self) -> str:
        return next(self._documents)

    def __repr__(self) -> str:
        return f"DocumentStream(source={self.source!r})"


def offline_reason(offline: bool) -> str | None:
    """Why the hub must not be used (``--offline`` or an offline environment variable), or None."""
    if offline:
        return "--offline given"
    for name in OFFLINE_ENV_VARS:
        if os.environ.get(name, "").strip().lower() in _TRUE:
            return f"{name}={os.environ[name]}"
    return None


def _one_line(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split()) or "no message"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}"


def describe_dataset(dataset: Mapping[str, str]) -> str:
    """``id [config] [data_dir] split`` of a spec's dataset mapping (for messages and the run record)."""
    parts = [dataset.get("id", "?")]
    for key in ("config", "data_dir"):
        if dataset.get(key):
            parts.append(dataset[key])
    parts.append(dataset.get("split", "train"))
    return " ".join(parts)


def resolve_revision(dataset: Mapping[str, str]) -> str:
    """The commit the dataset's revision (default ``main``) points to now: pins the stream and probes the hub."""
    from huggingface_hub import HfApi

    info = HfApi().dataset_info(dataset["id"], revision=dataset.get("revision") or None, timeout=HUB_PROBE_TIMEOUT_S)
    return str(info.sha or dataset.get("revision") or "main")


def load_hub_dataset(dataset: Mapping[str, str], revision: str, seed: int, buffer_size: int) -> Any:
    """The shuffled streaming ``IterableDataset`` of a spec's dataset mapping (datasets 4.x API)."""
    import datasets

    kwargs: dict[str, Any] = {"split": dataset.get("split", "train"), "streaming": True, "revision": revision}
    if dataset.get("config"):
        kwargs["name"] = dataset["config"]
    if dataset.get("data_dir"):
        kwargs["data_dir"] = dataset["data_dir"]
    stream = datasets.load_dataset(dataset["id"], **kwargs)
    return stream.shuffle(seed=seed, buffer_size=buffer_size)


def _texts(examples: Iterator[Mapping[str, Any]], text_field: str) -> Iterator[str]:
    for example in examples:
        text = example.get(text_field)
        if isinstance(text, str) and text.strip():
            yield text


def hub_documents(stream: Any, text_field: str, first: Mapping[str, Any] | None = None,
                  iterator: Iterator[Mapping[str, Any]] | None = None) -> Iterator[str]:
    """The text of every example, skipping empty ones; at the end of the data, the next epoch (reshuffled
    with ``set_epoch``, as ``datasets`` does).

    ``first``/``iterator`` continue the iteration the probe began, so the first example is not read twice.
    """
    epoch = 0
    if iterator is not None:
        if first is not None:
            yield from _texts(iter([first]), text_field)
        yield from _texts(iterator, text_field)
        epoch = 1
    while True:
        if hasattr(stream, "set_epoch"):
            stream.set_epoch(epoch)
        produced = False
        for text in _texts(iter(stream), text_field):
            produced = True
            yield text
        if not produced:
            return  # nothing usable in a whole pass: end the stream rather than loop forever
        epoch += 1


def open_stream(
    dataset: Mapping[str, str],
    seed: int,
    offline: bool,
    fallback: Callable[[int], Iterator[str]],
    fallback_label: str,
    *,
    buffer_size: int = SHUFFLE_BUFFER,
    loader: Callable[[Mapping[str, str], str, int, int], Any] | None = None,
    revision_resolver: Callable[[Mapping[str, str]], str] | None = None,
) -> DocumentStream:
    """Open the hub dataset ``dataset`` for ``seed`` or, if that cannot or must not be done, the fallback.

    The decision is made here, once: the hub is probed by resolving the revision and reading the first
    example. ``fallback(seed)`` must be an endless, deterministic offline source described by
    ``fallback_label``. ``loader``/``revision_resolver`` default to the real ``datasets``/hub calls
    (tests pass fakes).
    """

    def use_fallback(reason: str) -> DocumentStream:
        return DocumentStream(iter(fallback(seed)), f"offline: {fallback_label} ({reason})")

    if not dataset or not dataset.get("id"):
        return use_fallback("no hub dataset registered")
    reason = offline_reason(offline)
    if reason is not None:
        return use_fallback(f"hub not used: {reason}")
    if loader is None:
        try:
            import datasets  # noqa: F401
        except ImportError:
            return use_fallback("hub not used: the datasets library is not installed; pip install datasets")
        loader = load_hub_dataset
    resolver = revision_resolver or resolve_revision
    text_field = dataset.get("text_field", "text")
    try:
        revision = resolver(dataset)
        stream = loader(dataset, revision, seed, buffer_size)
        iterator = iter(stream)
        first = next(iterator)
    except StopIteration:
        return use_fallback(f"hub dataset {describe_dataset(dataset)} is empty")
    except Exception as exc:  # noqa: BLE001 - any failure to reach or read the hub means: use the fallback
        return use_fallback(f"hub unreachable: {_one_line(exc)}")
    if not isinstance(first, Mapping) or text_field not in first:
        fields = ", ".join(sorted(first)) if isinstance(first, Mapping) else type(first).__name__
        return use_fallback(f"hub dataset {describe_dataset(dataset)} has no field '{text_field}' (found: {fields})")
    source = (f"hub: {describe_dataset(dataset)} @ {revision[:12]}, field '{text_field}', shuffled with seed "
              f"{seed} (buffer {buffer_size}); licence: {dataset.get('licence', 'see the dataset card')}")
    return DocumentStream(hub_documents(stream, text_field, first=first, iterator=iterator), source)
