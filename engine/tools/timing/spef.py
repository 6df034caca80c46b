"""A placed and routed design's SPEF (IEEE 1481), read for what trials need beside OpenSTA's own
read_spef: which nets it extracted, and how much wire a net of a given fanout has, so nets an
ECO makes get an estimate from the design's own wiring."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from statistics import median

from noodle2.engine.quote import tcl_array

_UNITS = {"FF": 1e-15, "PF": 1e-12, "NF": 1e-9, "UF": 1e-6, "F": 1.0}


@dataclass(frozen=True)
class Summary:
    nets: dict[str, tuple[int, float]]  # net (as sta names it) -> (fanout, wire capacitance in farads)

    def by_fanout(self) -> dict[int, float]:
        """fanout -> median wire capacitance (farads) of the SPEF's nets with that fanout."""
        groups: dict[int, list[float]] = {}
        for fanout, cap in self.nets.values():
            groups.setdefault(fanout, []).append(cap)
        return {f: median(cs) for f, cs in sorted(groups.items())}


def _unescape(name: str) -> str:
    return re.sub(r"\\(.)", r"\1", name)


def summarise(text: str) -> Summary:
    """Each *D_NET's total capacitance and how many pins it connects beyond its driver."""
    unit = re.search(r"^\*C_UNIT\s+([0-9.eE+-]+)\s+(\w+)", text, re.M)
    scale = float(unit.group(1)) * _UNITS.get(unit.group(2).upper(), 1e-12) if unit else 1e-12
    names: dict[str, str] = {}
    head = re.search(r"^\*NAME_MAP\s*$(.*?)(?=^\*(?!\d)[A-Z_]+\b|\Z)", text, re.M | re.S)
    for m in re.finditer(r"^\*(\d+)\s+(\S+)\s*$", head.group(1) if head else "", re.M):
        names[m.group(1)] = m.group(2)
    nets: dict[str, tuple[int, float]] = {}
    for block in re.split(r"^(?=\*D_NET\s)", text, flags=re.M)[1:]:
        m = re.match(r"\*D_NET\s+(\S+)\s+(\S+)", block)
        if not m:
            continue
        key = m.group(1)
        name = names.get(key[1:], key) if key.startswith("*") else key
        conn = re.search(r"^\*CONN\s*$(.*?)(?=^\*(?:CAP|RES|END)\b)", block, re.M | re.S)
        pins = len(re.findall(r"^\*[PI]\s", conn.group(1), re.M)) if conn else 0
        nets[_unescape(name)] = (max(pins - 1, 0), float(m.group(2)) * scale)
    return Summary(nets)


def wire_estimates(spef: Path, cap_unit_f: float) -> str:
    """Tcl for eco_lib.tcl's n2_wire: the median wire capacitance per fanout in the Liberty's
    capacitance unit (set_load speaks it), and the nets the SPEF extracted (left as they are)."""
    s = summarise(spef.read_text(errors="replace"))
    table = " ".join(f"{f} {c / cap_unit_f:.6g}" for f, c in s.by_fanout().items())
    lines = [f"# from {spef.name}: {len(s.nets)} extracted nets", f"set n2_wire_by_fanout {{{table or '1 0'}}}",
             "set n2_estimated [dict create]"]
    lines += tcl_array("n2_base_net", ((n, "1") for n in sorted(s.nets)))
    return "\n".join(lines) + "\n"
