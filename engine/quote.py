"""Quoting for everything noodle2 writes into a Tcl script or a Yosys script.

Tcl: every character outside a small safe set is backslash-escaped, which Tcl reads back as that
character (letters and digits, the only characters with a backslash meaning, are never escaped).
Yosys has no escape at all in its script tokenizer, so only names noodle2 itself chose, from a
safe alphabet, may reach a Yosys script.  Control characters are refused everywhere: a newline
ends a Tcl command and a Yosys script line.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_TCL_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:@+=,%^~")
_YOSYS_SAFE = re.compile(r"[A-Za-z0-9_.+/][A-Za-z0-9_.+/-]*")


def control_chars(s: str) -> list[str]:
    """The control characters in `s` (C0, DEL, C1 and Unicode format/separator controls)."""
    return [c for c in s if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")]


def tcl_word(s: str) -> str:
    """`s` as one Tcl word that evaluates to exactly `s`, with no substitution."""
    if bad := control_chars(s):
        raise ValueError(f"control character {bad[0]!r} cannot be quoted for Tcl")
    return "".join(c if c in _TCL_SAFE else "\\" + c for c in s) or "{}"


def tcl_array(name: str, items: Iterable[tuple[str, str]], per_line: int = 32) -> list[str]:
    """`array set` lines for a table of (key, value) pairs, each key quoted here and each value
    already one Tcl word, `per_line` pairs to a line.  OpenSTA's `source` reads a script a line
    at a time and checks each command for completeness as it grows, so a table costs by its
    lines: a `set` per element took 6.1 ms for sky130hd's facts, these 1.4 ms, in every trial.
    No lines (and no array) when there are no pairs."""
    pairs = [f"{tcl_word(k)} {v}" for k, v in items]
    return [f"array set {name} {{{' '.join(pairs[i:i + per_line])}}}" for i in range(0, len(pairs), per_line)]


def yosys_word(s: str) -> str:
    """`s` unchanged if Yosys reads it as one word, else ValueError: Yosys cannot quote."""
    if not _YOSYS_SAFE.fullmatch(s):
        raise ValueError(f"{s!r} is not a name Yosys can read (use letters, digits and _ . + / -)")
    return s


def safe_name(s: str) -> str:
    """A file name built only from Yosys- and Tcl-safe characters, derived from `s`."""
    out = re.sub(r"[^A-Za-z0-9_.+-]", "_", s).lstrip("-.") or "file"
    return out[:100]
