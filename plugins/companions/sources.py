"""The built-in streams: each names a public dataset for real runs and an offline source for offline ones.

``DATASETS`` is what the companion specs register (and docs/companions.md explains); the ``*_documents``
functions are the specs' lazy ``documents`` targets, ``f(seed, offline) -> iterator`` whose ``.source``
says which source was used (see :func:`ent_plugins.companions.hub.open_stream`).
"""

from __future__ import annotations

from .hub import DocumentStream, open_stream
from .offline import creative_documents as _offline_creative
from .offline import english_prose_documents as _offline_prose
from .offline import python_source_documents as _offline_code
from .offline import stdlib_label
from .offline import worked_math_documents as _offline_math

DATASETS: dict[str, dict[str, str]] = {
    "code": {
        "id": "bigcode/the-stack-dedup",
        "data_dir": "data/python",
        "split": "train",
        "text_field": "content",
        "licence": "permissively licensed source files (MIT, Apache-2.0, BSD and similar), each under its own "
                   "licence; The Stack terms of use (gated: accept them on the dataset page and log in)",
        "url": "https://huggingface.co/datasets/bigcode/the-stack-dedup",
    },
    "nl": {
        "id": "wikimedia/wikipedia",
        "config": "20231101.en",
        "split": "train",
        "text_field": "text",
        "licence": "CC BY-SA 3.0 and GFDL",
        "url": "https://huggingface.co/datasets/wikimedia/wikipedia",
    },
    "math": {
        "id": "open-web-math/open-web-math",
        "split": "train",
        "text_field": "text",
        "licence": "ODC-By 1.0",
        "url": "https://huggingface.co/datasets/open-web-math/open-web-math",
    },
    "creative": {
        "id": "roneneldan/TinyStories",
        "split": "train",
        "text_field": "text",
        "licence": "CDLA-Sharing-1.0",
        "url": "https://huggingface.co/datasets/roneneldan/TinyStories",
    },
}

OFFLINE_LABELS: dict[str, str] = {
    "nl": "general-English paragraphs written procedurally by ent (town profiles, biographies, news, reviews, "
          "letters, opinion, travel notes, instructions, nature notes, explanations)",
    "math": "worked problems generated procedurally by ent (twenty kinds, from linear equations to integrals)",
    "creative": "stories, fables, rhymed poems and dialogue scenes generated procedurally by ent",
}


def code_documents(seed: int, offline: bool = False) -> DocumentStream:
    """The primary stream: Python from The Stack (deduplicated), or the standard library's own sources."""
    return open_stream(DATASETS["code"], seed, offline, _offline_code, stdlib_label())


def nl_documents(seed: int, offline: bool = False) -> DocumentStream:
    """English Wikipedia, or procedurally written general-English paragraphs."""
    return open_stream(DATASETS["nl"], seed, offline, _offline_prose, OFFLINE_LABELS["nl"])


def math_documents(seed: int, offline: bool = False) -> DocumentStream:
    """OpenWebMath, or procedurally generated worked problems."""
    return open_stream(DATASETS["math"], seed, offline, _offline_math, OFFLINE_LABELS["math"])


def creative_documents(seed: int, offline: bool = False) -> DocumentStream:
    """TinyStories, or procedurally generated stories, fables, poems and scenes."""
    return open_stream(DATASETS["creative"], seed, offline, _offline_creative, OFFLINE_LABELS["creative"])


def none_documents(seed: int, offline: bool = False) -> DocumentStream:
    """No companion: an empty stream (``ent run`` skips the companion entirely for ``none``)."""
    return DocumentStream(iter(()), "none: no companion text")
