"""Gate-level netlist facts that the tools leave to us: wire declarations, cell usage, area."""
from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from pathlib import Path

_DECL = re.compile(r"^[ \t]*(input|output|inout|wire)\s+(\[\s*(\d+)\s*:\s*(\d+)\s*\]\s*)?([^;]+);", re.M)
# a pin's connection: an escaped name (ended by whitespace) or a plain one, each maybe a bus bit
_CONN = re.compile(r"\.\w+\s*\(\s*(?:(\\\S+)\s+|([A-Za-z_][\w$]*)\s*)(?:\[\s*(\d+)\s*\]\s*)?\)")
_INST = re.compile(r"^[ \t]*([A-Za-z_][\w$]*)[ \t]+(\\\S+[ \t]|[A-Za-z_][\w$]*)[ \t]*\(", re.M)
_KEYWORDS = {"module", "input", "output", "inout", "wire", "assign", "endmodule", "reg"}


def declare_wires(text: str) -> str:
    """OpenSTA 2.0.17's write_verilog omits internal `wire` declarations; Yosys then reads a
    bit-select like ra[3] as a 1-bit implicit wire.  Declare every internal net and bus."""
    first = _INST.search(text, text.index(";") + 1)  # first instance after the module header
    at = first.start() if first else text.rindex("endmodule")
    declared = set()
    for m in _DECL.finditer(text, 0, at):  # declarations all precede the first instance
        for name in m.group(5).split(","):
            declared.add(name.strip())
    scalars: set[str] = set()
    buses: dict[str, set[int]] = {}
    for escaped, name, index in _CONN.findall(text):  # one C-level pass: netlists are ~100k lines
        n = escaped or name
        if index:
            buses.setdefault(n, set()).add(int(index))
        else:
            scalars.add(n)
    scalars -= declared
    buses = {k: v for k, v in buses.items() if k not in declared}

    def decl(n: str) -> str:  # an escaped identifier ends at whitespace
        return f"{n} " if n.startswith("\\") else n

    lines = [f" wire [{max(ix)}:{min(ix)}] {decl(name)};" for name, ix in sorted(buses.items())]
    lines += [f" wire {decl(name)};" for name in sorted(scalars)]
    if not lines:
        return text
    return text[:at] + "\n".join(lines) + "\n\n" + text[at:]


def cell_usage(text: str) -> Counter[str]:
    return Counter(m.group(1) for m in _INST.finditer(text) if m.group(1) not in _KEYWORDS)


@lru_cache(maxsize=8)
def liberty_areas(path: Path) -> dict[str, float]:
    """cell name -> area, from a Liberty file: the first `area` after each `cell (...)`."""
    text = path.read_text(errors="replace")
    out: dict[str, float] = {}
    for m in re.finditer(r"\bcell\s*\(\s*\"?([\w$]+)\"?\s*\)", text):
        a = re.compile(r"\barea\s*:\s*([0-9.eE+-]+)").search(text, m.end())
        if a:
            out[m.group(1)] = float(a.group(1))
    return out


def area_um2(usage: Counter[str], areas: dict[str, float]) -> float:
    missing = [c for c in usage if c not in areas]
    if missing:
        raise KeyError(f"cells not in the Liberty: {', '.join(sorted(missing)[:5])}")
    return round(sum(areas[c] * n for c, n in usage.items()), 3)
