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

import fnmatch
import os
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

_TOKEN = re.compile(r'[ \t\r\f\v]+|/\*.*?\*/|//[^\n]*|\\\r?\n|(\n)|"((?:[^"\\]|\\.)*)"|([{}();:,])|([^\s{}();:,"]+)',
                    re.S)
_NL = "\n"


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
    """A Liberty file as nested groups: `kind (args) { attr : value; name (args); ... }`.  A
    simple attribute ends at its `;` or, where a file leaves that out (ASAP7), at the end of
    its line."""
    toks: list[str] = []
    for m in _TOKEN.finditer(text):
        if m.lastindex is not None:
            toks.append(m.group(m.lastindex))
    root = Group("root", [])
    stack = [root]
    n = len(toks)

    def after(j: int) -> int:  # the next token that is not an end of line
        while j < n and toks[j] == _NL:
            j += 1
        return j

    i = after(0)
    while i < n:
        t = toks[i]
        if t == "}":
            stack.pop() if len(stack) > 1 else None
            i = after(i + 1)
            continue
        k = after(i + 1)
        if k < n and toks[k] == ":":
            j = after(k + 1)
            val = []
            while j < n and toks[j] not in (";", "}", _NL):
                val.append(toks[j])
                j += 1
            stack[-1].attrs[t] = " ".join(val)
            i = after(j + 1 if j < n and toks[j] in (";", _NL) else j)
            continue
        if k < n and toks[k] == "(":
            j = k + 1
            args = []
            while j < n and toks[j] != ")":
                if toks[j] not in (",", _NL):
                    args.append(toks[j])
                j += 1
            j = after(j + 1)
            if j < n and toks[j] == "{":
                g = Group(t, args)
                stack[-1].groups.append(g)
                stack.append(g)
                i = after(j + 1)
            else:
                stack[-1].complex[t] = args
                i = after(j + 1 if j < n and toks[j] == ";" else j)
            continue
        i = after(i + 1)
    return root


# --- boolean functions ---------------------------------------------------------------------------

_FTOK = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_\[\]]*|[01]|[!'()*&+|^])")


def truth_table(expr: str, inputs: list[str]) -> int:
    """The function as a bitmask over 2**len(inputs) rows (row r: input k = bit k of r).
    Precedence (Liberty): ! and ' bind tightest, then ^, then AND (*, &, space), then OR (+, |)."""
    # one recursive-descent parser, a small closure per precedence level: kept together, as a grammar reads
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
    footprint: str | None = None  # cell_footprint: sizes of one cell kind share it (SKY130)
    leakage: float | None = None  # state-independent leakage, in the library's power unit
    source: str = ""  # the library (file) that defines the cell
    intrinsic: float = 0.0  # least delay through it (library time unit): delay cells have much more
    input_cap: float = 0.0  # the largest input pin capacitance (library unit)

    @property
    def key(self) -> tuple | None:
        """Cells with the same key are sizes of one function (of one kind, where the Liberty
        says so with a footprint: a clock buffer is not a size of a buffer)."""
        if self.sequential or self.truth is None or len(self.outputs) != 1:
            return None
        return (self.inputs, self.outputs, self.truth, self.footprint)


@dataclass(frozen=True)
class Library:
    name: str
    cells: dict[str, Cell]
    families: dict[str, tuple[str, ...]]  # cell -> its family, weakest first
    buffers: tuple[str, ...]
    inverters: tuple[str, ...]
    cap_unit_f: float = 1e-12  # farads per capacitance unit (capacitive_load_unit)
    vt: dict[str, tuple[str, ...]] = field(default_factory=dict)  # cell -> its threshold-voltage ladder, slow first
    dont_use: frozenset[str] = frozenset()  # cells noodle2 never chooses

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


def _intrinsic(pin: Group) -> float:
    """The pin's smallest delay (first entry of its cell_rise/cell_fall tables, at the least load
    and slew): what a delay cell has much more of than a buffer of the same drive."""
    best = 0.0
    for t in pin.sub("timing"):
        for tab in t.groups:
            if tab.kind in ("cell_rise", "cell_fall") and "values" in tab.complex:
                values = _numbers(tab.complex["values"])
                if values and values[0]:
                    best = max(best, values[0][0])
    return best


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
                 if p.args and p.attrs.get("direction") == "output" and _is_number(p.attrs.get("max_capacitance"))},
                g.attrs.get("cell_footprint") or None, _leakage(g), "",
                _intrinsic(out) if out is not None else 0.0,
                max((float(p.attrs["capacitance"]) for p in pins if p.attrs.get("direction") == "input"
                     and _is_number(p.attrs.get("capacitance"))), default=0.0))


def _leakage(g: Group) -> float | None:
    """cell_leakage_power, else the leakage_power groups that hold whatever the state (summed over
    their power pins), else the mean of the per-state ones."""
    if _is_number(g.attrs.get("cell_leakage_power")):
        return float(g.attrs["cell_leakage_power"])
    groups = [x for x in g.sub("leakage_power") if _is_number(x.attrs.get("value"))]
    always = [float(x.attrs["value"]) for x in groups if "when" not in x.attrs]
    if always:
        return sum(always)
    per_state = [float(x.attrs["value"]) for x in groups]
    return sum(per_state) / len(per_state) if per_state else None


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


CACHE_FORMAT = 1  # of the parsed-cell files in the cache: bump when Cell changes


@lru_cache(maxsize=16)
def _load(path: str, _stamp: tuple[int, int]) -> Library:
    """One Liberty file.  Parsing a large one takes seconds (ASAP7's AO file: 22 MB), so its
    cells are kept in the cache by the file's sha256 and read back in milliseconds."""
    import hashlib

    import orjson

    from noodle2.engine.fsutil import atomic_write, cache_root, read_capped

    data = Path(path).read_bytes()
    cached = cache_root() / "liberty" / f"{hashlib.sha256(data).hexdigest()}.v{CACHE_FORMAT}.json"
    try:
        d = orjson.loads(read_capped(cached, 256 << 20))
        cells = {c["name"]: _cell_from_json(c) for c in d["cells"]}
        return _assemble(d["name"], cells, d["cap_unit_f"], frozenset())
    except (OSError, ValueError, KeyError, TypeError):
        pass
    lib = _parse_file(path, data.decode(errors="replace"))
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(cached, orjson.dumps({"name": lib.name, "cap_unit_f": lib.cap_unit_f,
                                           "cells": [c.__dict__ for c in lib.cells.values()]}))
    except Exception:  # noqa: BLE001 - a cache that cannot be written only costs time
        pass
    return lib


def _cell_from_json(c: dict) -> Cell:
    c = dict(c)
    c["inputs"], c["outputs"] = tuple(c["inputs"]), tuple(c["outputs"])
    c["symmetric"] = tuple(tuple(g) for g in c["symmetric"])
    return Cell(**c)


def _parse_file(path: str, text: str) -> Library:
    root = parse(text)
    lib = next(iter(root.sub("library")), root)
    name = lib.args[0] if lib.args else Path(path).stem
    templates = {t.args[0]: [t.attrs.get(f"variable_{k}", "") for k in (1, 2, 3)]
                 for t in lib.sub("lu_table_template") if t.args}
    cells = {c.name: replace(c, source=name) for c in (_cell(g, templates) for g in lib.sub("cell"))}
    return _assemble(name, cells, _cap_unit(lib), frozenset())


def _assemble(name: str, cells: dict[str, Cell], cap_unit_f: float, dont_use: frozenset[str]) -> Library:
    """Families (per source library, so each threshold voltage sizes within itself), buffers and
    inverters among the cells noodle2 may choose, and the threshold-voltage ladders."""
    by_key: dict[tuple, list[Cell]] = {}
    for c in cells.values():
        if c.key is not None and c.name not in dont_use:
            by_key.setdefault((c.source, c.key), []).append(c)
    families: dict[str, tuple[str, ...]] = {}
    beaten: set[str] = set()
    for members in by_key.values():
        kept, slow = _split_delay_cells(members)
        beaten.update(c.name for c in slow)
        for part in (kept, slow):
            order = tuple(c.name for c in sorted(part, key=lambda c: (-c.resistance, c.area, c.name)))
            for c in part:
                families[c.name] = order
    sources = list(dict.fromkeys(c.source for c in cells.values()))

    def best(truth: int) -> tuple[str, ...]:
        """Buffers (inverters): the widest family of one-input cells with this function, from
        the first library that has one (the technology's default threshold voltage)."""
        fams = {families[c.name] for c in cells.values() if c.name in families and c.name not in beaten
                and len(c.inputs) == 1 and c.truth == truth}
        return min(fams, key=lambda f: (sources.index(cells[f[0]].source), -len(f), f), default=())
    return Library(name, cells, families, best(0b10), best(0b01), cap_unit_f, _vt_ladders(cells, dont_use), dont_use)


def _split_delay_cells(members: list[Cell]) -> tuple[list[Cell], list[Cell]]:
    """Delay cells share a buffer's function and, in SKY130, its footprint; sized among buffers
    they would be a weak step up that is always refused.  A cell that another member beats
    (drives as hard or harder, is as fast or faster at no load, is no larger, and loads its
    inputs at most a quarter more) is never worth choosing: (the others, the beaten ones)."""
    def beats(a: Cell, b: Cell) -> bool:
        mine, theirs = (a.resistance, a.intrinsic, a.area), (b.resistance, b.intrinsic, b.area)
        return (all(x <= y for x, y in zip(mine, theirs)) and mine != theirs
                and a.input_cap <= 1.25 * b.input_cap)
    beaten = [c for c in members if c.intrinsic > 0 and any(beats(o, c) for o in members if o is not c)]
    return [c for c in members if c not in beaten], beaten


def _vt_ladders(cells: dict[str, Cell], dont_use: frozenset[str]) -> dict[str, tuple[str, ...]]:
    """Cells of one function, one kind and one area that different libraries define are the same
    cell at other threshold voltages (ASAP7's _R, _L, _SL): ordered by leakage, least first
    (slowest), so a step up the ladder is faster and leakier."""
    groups: dict[tuple, list[Cell]] = {}
    for c in cells.values():
        if c.key is not None and c.name not in dont_use and c.leakage is not None:
            groups.setdefault((c.key, round(c.area, 6)), []).append(c)
    out: dict[str, tuple[str, ...]] = {}
    for members in groups.values():
        if len({c.source for c in members}) < 2:
            continue
        ladder = tuple(c.name for c in sorted(members, key=lambda c: (c.leakage, c.name)))
        for c in members:
            out[c.name] = ladder
    return out


def load(path: Path) -> Library:
    st = os.stat(path)
    return _load(str(path), (st.st_mtime_ns, st.st_size))


def load_set(paths: tuple[Path, ...] | list[Path], dont_use: tuple[str, ...] = ()) -> Library:
    """Several Liberty files read as one library (ASAP7 keeps its cells in five per threshold
    voltage), with the cells matching `dont_use` patterns kept out of every family."""
    key = tuple((str(p), os.stat(p).st_mtime_ns, os.stat(p).st_size) for p in paths)
    return _load_set(key, tuple(dont_use))


@lru_cache(maxsize=8)
def _load_set(key: tuple, dont_use: tuple[str, ...]) -> Library:
    parts = [_load(p, (mtime, size)) for p, mtime, size in key]
    cells: dict[str, Cell] = {}
    for lib in parts:
        for c in lib.cells.values():
            cells.setdefault(c.name, c)  # the first file that defines a cell wins, as in sta
    banned = frozenset(n for n in cells if any(fnmatch.fnmatchcase(n, p) for p in dont_use))
    name = parts[0].name if len(parts) == 1 else f"{parts[0].name} (+{len(parts) - 1} more)"
    return _assemble(name, cells, parts[0].cap_unit_f, banned)


class LibertyError(ValueError):
    """A Liberty name that no Tcl word can carry (a control character): the file is refused."""


def tcl_facts(lib: Library) -> str:
    """The Library as Tcl arrays for eco_lib.tcl: families, symmetric pin groups, I/O pins.
    Every name read from the file is one quoted Tcl word (tcl_word); a name with a control
    character is refused (LibertyError), never pasted."""
    from noodle2.engine.quote import control_chars, tcl_array, tcl_word

    for c in lib.cells.values():
        for name in (c.name, *c.inputs, *c.outputs):
            if bad := control_chars(name):
                raise LibertyError(f"the Liberty's cell {c.name!r} has a name holding the control character "
                                   f"{bad[0]!r}; noodle2 refuses to pass it to sta")
    cells = sorted(lib.cells.values(), key=lambda c: c.name)
    words = (lambda names: " ".join(tcl_word(x) for x in names))
    out = ["# cell facts from the Liberty: families weakest first, commutative inputs"]
    out += tcl_array("n2_family", ((name, f"{{{words(lib.families[name])}}}") for name in sorted(lib.families)))
    out += tcl_array("n2_symmetric", ((c.name, "{" + " ".join(f"{{{words(g)}}}" for g in c.symmetric) + "}")
                                      for c in cells if c.symmetric))
    out += tcl_array("n2_io", ((c.name, f"{{{{{words(c.inputs)}}} {tcl_word(c.outputs[0])}}}")
                               for c in cells if c.key is not None))
    out += tcl_array("n2_sequential", ((c.name, "1") for c in cells if c.sequential))
    out += tcl_array("n2_vt", ((name, f"{{{words(lib.vt[name])}}}") for name in sorted(lib.vt)))
    # in farads, as OpenSTA reports net capacitance
    out += tcl_array("n2_maxcap", ((f"{c.name}/{pin}", f"{limit * lib.cap_unit_f:.6g}")
                                   for c in cells for pin, limit in sorted(c.max_cap.items())))
    out.append(f"set n2_buffers {{{words(lib.buffers)}}}")
    out.append(f"set n2_inverters {{{words(lib.inverters)}}}")
    return "\n".join(out) + "\n"


_CELL_START = re.compile(r'^[ \t]*cell\s*\(\s*"?([^")\s]+)"?\s*\)\s*\{', re.M)
_TEMPLATE_START = re.compile(r'^[ \t]*(?:lu_table_template|power_lut_template)\s*\(\s*"?([^")\s]+)"?\s*\)\s*\{', re.M)


_BRACES = re.compile(r'[{}]|"[^"\\]*(?:\\.[^"\\]*)*"|/\*.*?\*/|//[^\n]*', re.S)


def _group_end(text: str, i: int) -> int:
    """The index after the `}` that closes the group whose `{` ends at text[i - 1] (a brace in a
    string or a comment does not count); the end of the text if nothing closes it."""
    depth = 1
    for m in _BRACES.finditer(text, i):
        c = m.group()
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return m.end()
    return len(text)


def merged_text(paths: list[Path], keep=lambda cell: True) -> str:
    """Several Liberty files as one (Yosys's dfflibmap and abc read a single file): the first
    file's header, the table templates the others add, and every cell `keep` accepts."""
    head_out: list[str] = []
    cells_out: list[str] = []
    templates: set[str] = set()
    for k, p in enumerate(paths):
        text = p.read_text(errors="replace")
        first = _CELL_START.search(text)
        head = text[:first.start()] if first else text[:text.rstrip().rindex("}")]
        names = {m.group(1) for m in _TEMPLATE_START.finditer(head)}
        if k == 0:
            head_out.append(head)
            templates |= names
        else:
            for m in _TEMPLATE_START.finditer(head):
                if m.group(1) not in templates:
                    templates.add(m.group(1))
                    head_out.append(head[m.start():_group_end(head, m.end())] + "\n")
        pos = first.start() if first else len(text)
        while (m := _CELL_START.search(text, pos)) is not None:
            end = _group_end(text, m.end())
            if keep(m.group(1)):
                cells_out.append(text[m.start():end] + "\n")
            pos = end
    return "".join(head_out) + "".join(cells_out) + "}\n"


_TABLES_START = re.compile(r'^[ \t]*(?:timing|internal_power|leakage_power)\s*\([^)]*\)\s*\{', re.M)


def cells_text(text: str) -> str:
    """A Liberty file without its timing and power groups: what Yosys's `read_liberty` uses
    (cells, pins, functions, flip-flops, latches) at a fraction of the parse (sky130hd: 12.4 MB
    to 0.96 MB).  ABC still gets the whole file; it maps by the delay tables.  A file this scan
    would lose a cell of (a group never closed) is kept whole."""
    out: list[str] = []
    pos = 0
    while (m := _TABLES_START.search(text, pos)) is not None:
        out.append(text[pos:m.start()])
        pos = _group_end(text, m.end())
    out.append(text[pos:])
    cut = "".join(out)
    return cut if len(_CELL_START.findall(cut)) == len(_CELL_START.findall(text)) else text


def liberty_cell_names(paths: tuple[Path, ...]) -> frozenset[str]:
    """Every `cell (name)` in the files, by a scan (no full parse: validate stays quick)."""
    out: set[str] = set()
    for p in paths:
        out |= _cell_names(str(p), p.stat().st_mtime_ns)
    return frozenset(out)


@lru_cache(maxsize=32)
def _cell_names(path: str, _mtime: int) -> frozenset[str]:
    text = Path(path).read_text(errors="replace")
    return frozenset(m.group(1) for m in re.finditer(r'^\s*cell\s*\(\s*"?([^")\s]+)"?\s*\)', text, re.M))
