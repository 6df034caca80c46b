"""Formatting shared by every view: numbers with their units, plurals."""
from __future__ import annotations


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def fmt_ns(ps: float | None) -> str:
    return "—" if ps is None else f"{ps / 1000:+.3f}"
