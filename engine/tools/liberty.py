"""What a Liberty file says about its cells: pins, functions as truth tables, area, drive.

Size families, buffers, inverters and commutative input groups come from here, not from cell
names, so every ECO works on any Liberty (osu018, osu035, osu050, or one a study names).

- family: combinational single-output cells with the same input pins, output pin and function,
  ordered weakest to strongest (by how fast the output transition grows with load in the cell's
  timing tables, then area, then name);
- symmetric groups: inputs whose exchange leaves the function unchanged (the pin-swap groups);
- buffers and inverters: one-input cells whose function is the input or its negation.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

_TOKEN = re.compile(r'\s+|/\*.*?\*/|//[^\n]*|\\\n|"((?:[^"\\]|\\.)*)"|([{}();:,])|([^\s{}();:,"]+)', re.S)


@dataclass
class Group:
    kind: str
    args: list[str]
    attrs: dict[str, str] = field(default_factory=dict)
    complex: dict[str, list[str]] = field(default_factory=dict)
    groups: list["Group"] = field(default_factory=list)

    def sub(self, kind: str) -> list["Group"]:
        return [g for g in self.groups if g.kind == kind]


def parse(text: str) -> Group:
    """A Liberty file as nested groups: `kind (args) { attr : value; name (args); ... }`."""
    toks: list[str] = []
    for m in _TOKEN.finditer(text):
        if m.group(1) is not None:
            toks.append(m.group(1))
        elif m.group(2) is not None:
            toks.append(m.group(2))
        elif m.group(3) is not None:
            toks.append(m.group(3))
    root = Group("root", [])
    stack = [root]
    i = 0
    while i < len(toks):
        t = toks[i]
        if t == "}":
            stack.pop() if len(stack) > 1 else None
            i += 1
            continue
        if i + 1 < len(toks) and toks[i + 1] == ":":
            j = i + 2
            val = []
            while j < len(toks) and toks[j] not in (";", "}"):
                val.append(toks[j])
                j += 1
            stack[-1].attrs[t] = " ".join(val)
            i = j + 1 if j < len(toks) and toks[j] == ";" else j
            continue
        if i + 1 < len(toks) and toks[i + 1] == "(":
            j = i + 2
            args = []
            while j < len(toks) and toks[j] != ")":
                if toks[j] != ",":
                    args.append(toks[j])
                j += 1
            j += 1
            if j < len(toks) and toks[j] == "{":
                g = Group(t, args)
                stack[-1].groups.append(g)
                stack.append(g)
                i = j + 1
            else:
                stack[-1].complex[t] = args
                i = j + 1 if j < len(toks) and toks[j] == ";" else j
            continue
        i += 1
    return root


# --- boolean functions ---------------------------------------------------------------------------

_FTOK = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_\[\]]*|[01]|[!'()*&+|^])")


def truth_table(expr: str, inputs: list[str]) -> int:
    """The function as a bitmask over 2**len(inputs) rows (row r: input k = bit k of r).
    Precedence (Liberty): ! and ' bind tightest, then ^, then AND (*, &, space), then OR (+, |)."""
    n = len(inputs)
    full = (1 << (1 << n)) - 1
    var = {}
    for k, name in enumerate(inputs):
        var[name] = sum(1 << r for r in range(1 << n) if r >> k & 1)
    toks = [m.group(1) for m in _FTOK.finditer(expr)]
    pos = 0

    def peek() -> str | None:
        return toks[pos] if pos < len(toks) else None

    def take() -> str:
        nonlocal pos
        pos += 1
        return toks[pos - 1]

    def primary() -> int:
        t = take()
        if t == "(":
            v = or_expr()
            if take() != ")":
                raise ValueError(f"unbalanced parentheses in {expr!r}")
            return v
        if t == "!":
            return full & ~primary()
        if t in ("0", "1"):
            return full if t == "1" else 0
        if t not in var:
            raise ValueError(f"{t!r} in {expr!r} is not an input pin")
        return var[t]

    def unary() -> int:
        v = primary()
        while peek() == "'":
            take()
            v = full & ~v
        return v

    def xor_expr() -> int:
        v = unary()
        while peek() == "^":
            take()
            v ^= unary()
        return v

    def and_expr() -> int:
        v = xor_expr()
        while peek() is not None and peek() not in ("+", "|", ")"):
            if peek() in ("*", "&"):
                take()
            v &= xor_expr()
        return v

    def or_expr() -> int:
        v = and_expr()
        while peek() in ("+", "|"):
            take()
            v |= and_expr()
        return v

    v = or_expr()
    if pos != len(toks):
        raise ValueError(f"cannot parse function {expr!r}")
    return v


def _swap(tt: int, n: int, a: int, b: int) -> int:
    out = 0
    for r in range(1 << n):
        ba, bb = r >> a & 1, r >> b & 1
        s = r & ~((1 << a) | (1 << b)) | (bb << a) | (ba << b)
        out |= (tt >> s & 1) << r
    return out


# --- cells ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cell:
    name: str
    area: float
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    function: str | None  # of the single output, for combinational cells
    truth: int | None
    truths: dict[str, int]  # output pin -> truth table over `inputs`, for combinational cells
    sequential: bool
    resistance: float  # output transition per unit load, from the timing tables: lower drives harder
    symmetric: tuple[tuple[str, ...], ...]
    max_cap: dict[str, float] = field(default_factory=dict)  # output pin -> max_capacitance (library unit)

    @property
    def key(self) -> tuple | None:
        """Cells with the same key are sizes of one function."""
        if self.sequential or self.truth is None or len(self.outputs) != 1:
            return None
        return (self.inputs, self.outputs, self.truth)


@dataclass(frozen=True)
class Library:
    name: str
    cells: dict[str, Cell]
    families: dict[str, tuple[str, ...]]  # cell -> its family, weakest first
    buffers: tuple[str, ...]
    inverters: tuple[str, ...]
    cap_unit_f: float = 1e-12  # farads per capacitance unit (capacitive_load_unit)

    def family(self, cell: str) -> tuple[str, ...]:
        return self.families.get(cell, (cell,))


def _numbers(args: list[str]) -> list[list[float]]:
    return [[float(x) for x in re.split(r"[ ,]+", row.strip()) if x] for row in args]


def _drive_resistance(pin: Group, templates: dict[str, list[str]]) -> float:
    """How much the output transition grows per unit of load (the largest over the pin's
    transition tables): a stronger cell grows less.  0 when the tables say nothing."""
    worst = 0.0
    for t in pin.sub("timing"):
        for tab in t.groups:
            if tab.kind not in ("rise_transition", "fall_transition") or "values" not in tab.complex:
                continue
            variables = templates.get(tab.args[0] if tab.args else "", [])
            values = _numbers(tab.complex["values"])
            load_axis = next((k for k, v in enumerate(variables) if v == "total_output_net_capacitance"), None)
            if load_axis is None or not values:
                continue
            index = _numbers(tab.complex.get(f"index_{load_axis + 1}", []))
            loads = index[0] if index else []
            if len(loads) < 2:
                continue
            if load_axis == 0:  # rows are loads: the first column, across rows
                rise = values[len(loads) - 1][0] - values[0][0]
            else:
                rise = values[0][len(loads) - 1] - values[0][0]
            worst = max(worst, rise / (loads[-1] - loads[0]))
    return worst


def _cell(g: Group, templates: dict[str, list[str]]) -> Cell:
    pins = g.sub("pin")
    inputs = tuple(p.args[0] for p in pins if p.attrs.get("direction") == "input")
    outputs = tuple(p.args[0] for p in pins if p.attrs.get("direction") in ("output", "inout"))
    sequential = bool(g.sub("ff") or g.sub("latch") or g.sub("statetable"))
    out = next((p for p in pins if p.attrs.get("direction") == "output"), None)
    function = out.attrs.get("function") if out is not None else None
    truth = None
    if function and not sequential and len(outputs) == 1 and 0 < len(inputs) <= 6:
        try:
            truth = truth_table(function, list(inputs))
        except ValueError:
            truth = None
    truths = {}
    if not sequential and 0 < len(inputs) <= 6:
        for p in pins:
            if p.attrs.get("direction") == "output" and p.attrs.get("function") and "three_state" not in p.attrs:
                try:
                    truths[p.args[0]] = truth_table(p.attrs["function"], list(inputs))
                except ValueError:
                    pass
    groups: list[set[str]] = []
    if truth is not None:
        n = len(inputs)
        for a in range(n):
            for b in range(a + 1, n):
                if _swap(truth, n, a, b) == truth:
                    ga = next((s for s in groups if inputs[a] in s), None)
                    gb = next((s for s in groups if inputs[b] in s), None)
                    if ga is None and gb is None:
                        groups.append({inputs[a], inputs[b]})
                    elif ga is not None and gb is None:
                        ga.add(inputs[b])
                    elif gb is not None and ga is None:
                        gb.add(inputs[a])
                    elif ga is not gb:
                        ga |= gb
                        groups.remove(gb)
    return Cell(g.args[0] if g.args else "?", float(g.attrs.get("area", "0") or 0), inputs, outputs, function, truth,
                truths, sequential, _drive_resistance(out, templates) if out is not None else 0.0,
                tuple(tuple(sorted(s)) for s in sorted(groups, key=sorted)),
                {p.args[0]: float(p.attrs["max_capacitance"]) for p in pins
                 if p.args and p.attrs.get("direction") == "output" and _is_number(p.attrs.get("max_capacitance"))})


def _is_number(x: str | None) -> bool:
    try:
        return x is not None and float(x) >= 0
    except ValueError:
        return False


_CAP_UNITS = {"ff": 1e-15, "pf": 1e-12, "nf": 1e-9}


def _cap_unit(lib: Group) -> float:
    """capacitive_load_unit (1, pf) -> farads per unit; pF when the file does not say."""
    args = lib.complex.get("capacitive_load_unit", [])
    try:
        return float(args[0]) * _CAP_UNITS[args[1].strip().lower()]
    except (IndexError, KeyError, ValueError):
        return 1e-12


@lru_cache(maxsize=16)
def _load(path: str, _stamp: tuple[int, int]) -> Library:
    root = parse(Path(path).read_text(errors="replace"))
    lib = next(iter(root.sub("library")), root)
    templates = {t.args[0]: [t.attrs.get(f"variable_{k}", "") for k in (1, 2, 3)]
                 for t in lib.sub("lu_table_template") if t.args}
    cells = {c.name: c for c in (_cell(g, templates) for g in lib.sub("cell"))}
    by_key: dict[tuple, list[Cell]] = {}
    for c in cells.values():
        if c.key is not None:
            by_key.setdefault(c.key, []).append(c)
    families: dict[str, tuple[str, ...]] = {}
    for members in by_key.values():
        order = tuple(c.name for c in sorted(members, key=lambda c: (-c.resistance, c.area, c.name)))
        for c in members:
            families[c.name] = order
    one = [c for c in cells.values() if c.key is not None and len(c.inputs) == 1]
    buf = next((families[c.name] for c in one if c.truth == 0b10), ())
    inv = next((families[c.name] for c in one if c.truth == 0b01), ())
    return Library(lib.args[0] if lib.args else Path(path).stem, cells, families, buf, inv, _cap_unit(lib))


def load(path: Path) -> Library:
    st = os.stat(path)
    return _load(str(path), (st.st_mtime_ns, st.st_size))


class LibertyError(ValueError):
    """A Liberty name that no Tcl word can carry (a control character): the file is refused."""


def tcl_facts(lib: Library) -> str:
    """The Library as Tcl arrays for eco_lib.tcl: families, symmetric pin groups, I/O pins.
    Every name read from the file is one quoted Tcl word (tcl_word); a name with a control
    character is refused (LibertyError), never pasted."""
    from engine.tools.quote import control_chars, tcl_word

    for c in lib.cells.values():
        for name in (c.name, *c.inputs, *c.outputs):
            if bad := control_chars(name):
                raise LibertyError(f"the Liberty's cell {c.name!r} has a name holding the control character "
                                   f"{bad[0]!r}; noodle2 refuses to pass it to sta")
    out = ["# cell facts from the Liberty: families weakest first, commutative inputs"]
    for name in sorted(lib.families):
        out.append(f"set n2_family({tcl_word(name)}) {{{' '.join(tcl_word(x) for x in lib.families[name])}}}")
    for c in sorted(lib.cells.values(), key=lambda c: c.name):
        if c.symmetric:
            groups = " ".join("{" + " ".join(tcl_word(p) for p in g) + "}" for g in c.symmetric)
            out.append(f"set n2_symmetric({tcl_word(c.name)}) {{{groups}}}")
        if c.key is not None:
            out.append(f"set n2_io({tcl_word(c.name)}) {{{{{' '.join(tcl_word(p) for p in c.inputs)}}} "
                       f"{tcl_word(c.outputs[0])}}}")
    for c in sorted(lib.cells.values(), key=lambda c: c.name):
        if c.sequential:
            out.append(f"set n2_sequential({tcl_word(c.name)}) 1")
    for c in sorted(lib.cells.values(), key=lambda c: c.name):
        for pin, limit in sorted(c.max_cap.items()):  # in farads, as OpenSTA reports net capacitance
            out.append(f"set n2_maxcap({tcl_word(c.name + '/' + pin)}) {limit * lib.cap_unit_f:.6g}")
    out.append(f"set n2_buffers {{{' '.join(tcl_word(x) for x in lib.buffers)}}}")
    out.append(f"set n2_inverters {{{' '.join(tcl_word(x) for x in lib.inverters)}}}")
    return "\n".join(out) + "\n"
