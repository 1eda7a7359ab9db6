"""Offline document sources: endless, deterministic for a seed, built from text already on the machine."""

from __future__ import annotations

import random
import sysconfig
from collections.abc import Iterator
from pathlib import Path


def _cycle_shuffled(items: list[str], seed: int) -> Iterator[str]:
    rng = random.Random(seed)
    epoch = 0
    while True:
        order = list(items)
        rng.shuffle(order)
        yield from order
        epoch += 1


def _stdlib_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = [p for p in sorted(root.glob("*.py")) if p.stat().st_size > 2000]
    return files


def python_source_documents(seed: int, offline: bool = True) -> Iterator[str]:
    """Each standard-library module is one document, in a seeded order, forever."""
    files = _stdlib_files()
    if not files:
        raise RuntimeError("no Python standard-library source files found")
    for path in _cycle_shuffled([str(p) for p in files], seed):
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        yield text


def _topic_paragraphs() -> list[str]:
    from pydoc_data import topics

    paragraphs: list[str] = []
    for text in topics.topics.values():
        for block in text.split("\n\n"):
            lines = [line.strip() for line in block.splitlines()]
            # prose only: skip indented code, tables and grammar productions
            if any(raw.startswith("   ") for raw in block.splitlines()) or len(" ".join(lines)) < 200:
                continue
            paragraphs.append(" ".join(lines))
    return paragraphs


def english_prose_documents(seed: int, offline: bool = True) -> Iterator[str]:
    """Paragraphs of English prose from CPython's bundled documentation topics, seeded order."""
    paragraphs = _topic_paragraphs()
    if not paragraphs:
        raise RuntimeError("no prose paragraphs found in pydoc_data")
    yield from _cycle_shuffled(paragraphs, seed)


def _math_problem(rng: random.Random) -> str:
    kind = rng.randrange(4)
    if kind == 0:
        a, b, c = rng.randint(2, 19), rng.randint(-40, 40), rng.randint(-60, 60)
        # a x + b = c  ->  x = (c - b) / a
        num = c - b
        return (
            f"Solve for x: {a}x + ({b}) = {c}.\n"
            f"Subtract {b} from both sides: {a}x = {c} - ({b}) = {num}.\n"
            f"Divide by {a}: x = {num}/{a}" + (f" = {num // a}." if num % a == 0 else f" ≈ {num / a:.4f}.")
        )
    if kind == 1:
        p, q = rng.randint(-9, 9), rng.randint(-9, 9)
        s, t = -(p + q), p * q
        return (
            f"Factor x^2 + ({s})x + ({t}).\n"
            f"We need two numbers with product {t} and sum {s}: they are {-p} and {-q}.\n"
            f"So x^2 + ({s})x + ({t}) = (x - ({p}))(x - ({q})), with roots x = {p} and x = {q}."
        )
    if kind == 2:
        xs = [rng.randint(1, 99) for _ in range(rng.randint(4, 8))]
        total = sum(xs)
        return (
            f"Find the mean of {', '.join(map(str, xs))}.\n"
            f"The sum is {' + '.join(map(str, xs))} = {total}. There are {len(xs)} values.\n"
            f"The mean is {total}/{len(xs)} = {total / len(xs):.3f}."
        )
    n = rng.randint(3, 12)
    return (
        f"Compute the derivative of f(x) = x^{n} + {n}x.\n"
        f"By the power rule, d/dx x^{n} = {n}x^{n - 1}, and d/dx {n}x = {n}.\n"
        f"Therefore f'(x) = {n}x^{n - 1} + {n}, and f'(1) = {2 * n}."
    )


def worked_math_documents(seed: int, offline: bool = True) -> Iterator[str]:
    """Worked arithmetic, algebra and calculus problems, generated from the seed, forever."""
    rng = random.Random(seed)
    while True:
        yield "\n\n".join(_math_problem(rng) for _ in range(rng.randint(2, 5)))


def no_documents(seed: int, offline: bool = True) -> Iterator[str]:
    """The empty companion (condition: code only)."""
    return iter(())
