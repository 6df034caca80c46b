"""Gate-level netlist facts that the tools leave to us: wire declarations, cell usage, area."""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

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


def pinless_cells(text: str) -> set[str]:
    """Cells whose every instance connects nothing, `CELL NAME ();`: physical-only cells (tap cells
    in a routed netlist) that no Liberty needs to describe."""
    seen: dict[str, bool] = {}
    for m in _INST.finditer(text):
        cell = m.group(1)
        if cell in _KEYWORDS:
            continue
        rest = text[m.end():m.end() + 64].lstrip()
        seen[cell] = seen.get(cell, True) and rest.startswith(")")
    return {c for c, empty in seen.items() if empty}


# --- a parsed netlist: bits, instances, assigns ---------------------------------------------

Bit = tuple[str, int | None]  # (name, bit index or None for a scalar)
_TOK = re.compile(r"\s+|//[^\n]*|/\*.*?\*/|\(\*.*?\*\)|(\\\S+)|([A-Za-z_][A-Za-z0-9_$]*)"
                  r"|(\d*'[sS]?[bBhHdDoO][0-9a-fA-FxXzZ_]+|\d+)|([()\[\]{}.,;:=])", re.S)


class NetlistError(ValueError):
    pass


@dataclass
class Netlist:
    module: str
    inputs: list[Bit] = field(default_factory=list)
    outputs: list[Bit] = field(default_factory=list)
    widths: dict[str, tuple[int, int]] = field(default_factory=dict)  # bus -> (msb, lsb)
    insts: dict[str, tuple[str, dict[str, Bit | int]]] = field(default_factory=dict)  # name -> (cell, pin -> bit|0|1)
    assigns: list[tuple[Bit, Bit | int]] = field(default_factory=list)


def parse_netlist(text: str) -> Netlist:
    """The first module of a flat gate-level Verilog netlist (Yosys's or OpenSTA's output)."""
    return _Parser(text).module()


class _Parser:
    """Recursive descent over tokens: declarations, assigns and cell instances, nothing else."""

    def __init__(self, text: str) -> None:
        self.toks = [m.group(m.lastindex) for m in _TOK.finditer(text) if m.lastindex]
        self.pos = 0
        self.net = Netlist("")

    def peek(self) -> str:
        return self.toks[self.pos] if self.pos < len(self.toks) else ""

    def take(self, want: str | None = None) -> str:
        t = self.peek()
        if want is not None and t != want:
            raise NetlistError(f"expected {want!r}, found {t!r} near token {self.pos}")
        self.pos += 1
        return t

    @staticmethod
    def name(t: str) -> str:
        return t[1:] if t.startswith("\\") else t

    def module(self) -> Netlist:
        while self.peek() and self.peek() != "module":
            self.take()
        self.take("module")
        self.net.module = self.name(self.take())
        while self.peek() != ";":  # port list: names only, declared below
            self.take()
        self.take(";")
        while self.peek() and self.peek() != "endmodule":
            t = self.take()
            if t in ("input", "output", "inout", "wire", "reg"):
                self.declaration(t)
            elif t == "assign":
                self.assign()
            else:
                self.instance(t)
        return self.net

    def declaration(self, kind: str) -> None:
        r = self.range()
        while True:
            n = self.name(self.take())
            if r is not None:
                self.net.widths[n] = r
            if kind in ("input", "output", "inout"):
                (self.net.inputs if kind == "input" else self.net.outputs).extend(self.bits_of(n))
            if self.take() == ";":
                return

    def assign(self) -> None:
        lhs = self.expr()
        self.take("=")
        rhs = self.expr()
        self.take(";")
        if len(lhs) != len(rhs):
            rhs = ([0] * (len(lhs) - len(rhs)) + rhs)[-len(lhs):]
        self.net.assigns += [(lb, rb) for lb, rb in zip(lhs, rhs) if isinstance(lb, tuple)]

    def instance(self, cell: str) -> None:
        """CELL NAME ( .PIN(expr), ... );"""
        inst = self.name(self.take())
        self.take("(")
        pins: dict[str, Bit | int] = {}
        while self.peek() != ")":
            if self.take() == ".":
                pin = self.take()
                self.take("(")
                if self.peek() != ")":
                    e = self.expr()
                    if len(e) == 1:
                        pins[pin] = e[0]
                self.take(")")
        self.take(")")
        self.take(";")
        self.net.insts[inst] = (cell, pins)

    def range(self) -> tuple[int, int] | None:
        if self.peek() != "[":
            return None
        self.take("[")
        msb = int(self.take())
        self.take(":")
        lsb = int(self.take())
        self.take("]")
        return msb, lsb

    def bits_of(self, n: str) -> list[Bit]:
        if n in self.net.widths:
            msb, lsb = self.net.widths[n]
            step = -1 if msb >= lsb else 1
            return [(n, i) for i in range(msb, lsb + step, step)]
        return [(n, None)]

    def expr(self) -> list[Bit | int]:
        t = self.take()
        if t == "{":
            out: list[Bit | int] = []
            while True:
                out += self.expr()
                if self.take() == "}":
                    return out
        if t[:1].isdigit() or t[:1] == "'":
            return _const_bits(t)
        n = self.name(t)
        if self.peek() != "[":
            return list(self.bits_of(n))
        self.take("[")
        hi = int(self.take())
        if self.peek() != ":":
            self.take("]")
            return [(n, hi)]
        self.take(":")
        lo = int(self.take())
        self.take("]")
        step = -1 if hi >= lo else 1
        return [(n, i) for i in range(hi, lo + step, step)]


def _const_bits(t: str) -> list[Bit | int]:
    if "'" not in t:
        return [int(b) for b in bin(int(t))[2:]]
    width, _, rest = t.partition("'")
    base, digits = rest.lstrip("sS")[0].lower(), rest.lstrip("sS")[1:].replace("_", "")
    value = int(digits.replace("x", "0").replace("z", "0"), {"b": 2, "h": 16, "d": 10, "o": 8}[base])
    w = int(width) if width else max(value.bit_length(), 1)
    return [value >> k & 1 for k in range(w - 1, -1, -1)]



_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def verilog_name(name: str) -> str:
    """An identifier as Verilog spells it: escaped (and ended by a space) unless it is plain."""
    return name if _PLAIN.fullmatch(name) else f"\\{name} "


def verilog_bit(b: Bit | int) -> str:
    if isinstance(b, int):
        return f"1'b{b}"
    return verilog_name(b[0]) + ("" if b[1] is None else f"[{b[1]}]")


def write_netlist(n: Netlist) -> str:
    """A Netlist as flat Verilog that OpenSTA and Yosys both read back exactly: every net
    declared (buses with their ranges, escaped names included)."""
    ports: list[str] = []
    for b in n.inputs + n.outputs:
        if b[0] not in ports:
            ports.append(b[0])
    seen_bits: dict[str, set[int]] = {}
    scalars: set[str] = set()
    for _, pins in n.insts.values():
        for b in pins.values():
            if isinstance(b, tuple):
                (seen_bits.setdefault(b[0], set()).add(b[1]) if b[1] is not None else scalars.add(b[0]))
    for lhs, rhs in n.assigns:
        for b in (lhs, rhs):
            if isinstance(b, tuple):
                (seen_bits.setdefault(b[0], set()).add(b[1]) if b[1] is not None else scalars.add(b[0]))

    def rng(name: str) -> str:
        if name in n.widths:
            return f"[{n.widths[name][0]}:{n.widths[name][1]}] "
        if name in seen_bits and seen_bits[name]:
            return f"[{max(seen_bits[name])}:{min(seen_bits[name])}] "
        return ""

    out = [f"module {verilog_name(n.module)}({', '.join(verilog_name(p) for p in ports)});"]
    inputs = {b[0] for b in n.inputs}
    for p in ports:
        out.append(f"  {'input' if p in inputs else 'output'} {rng(p)}{verilog_name(p)};")
    for name in sorted((set(seen_bits) | scalars) - set(ports)):
        out.append(f"  wire {rng(name)}{verilog_name(name)};")
    for inst, (cell, pins) in n.insts.items():
        conns = ", ".join(f".{p}({verilog_bit(b)})" for p, b in sorted(pins.items()))
        out.append(f"  {cell} {verilog_name(inst)} ({conns});")
    for lhs, rhs in n.assigns:
        out.append(f"  assign {verilog_bit(lhs)} = {verilog_bit(rhs)};")
    out.append("endmodule")
    return "\n".join(out) + "\n"
