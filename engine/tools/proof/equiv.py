"""Proving that an ECO'd netlist computes what its parent computed.

Structural matching first: both netlists become DAGs of Liberty functions between cut points
(primary inputs and registers, registers matched by name), with buffers and inverter pairs
collapsed, resized cells merged (same truth table), commutative inputs sorted, duplicated gates
and cloned registers merged.  Resizing, buffering, cloning and pin swaps prove equal this way in
milliseconds.  Only the outputs that still differ go to a miter over their cones alone (cells
from the Liberty's functions), proven by ABC's &cec; a failed proof leaves a counterexample.

A survivor is proven against its parent, which was proven against its own, back to the base.
Floating and undriven pins are refused before any solver runs.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from noodle2.engine.tools.netlist import Bit, Netlist, NetlistError, parse_netlist
from noodle2.engine.tools.tech.liberty import Library

# --- structural matching -------------------------------------------------------------------------

@dataclass
class Outcome:
    proven: bool
    method: str  # structural | sat | none
    seconds: float
    detail: str = ""
    mismatched: list[str] = field(default_factory=list)
    counterexample: str = ""

    def as_dict(self) -> dict:
        return {"proven": self.proven, "method": self.method, "seconds": round(self.seconds, 4),
                "detail": self.detail, "mismatched": self.mismatched[:20]}


def _permute(tt: int, n: int, order: list[int]) -> int:
    """The truth table with input order[k] moved to position k."""
    out = 0
    for r in range(1 << n):
        src = 0
        for k, j in enumerate(order):
            src |= (r >> k & 1) << j
        out |= (tt >> src & 1) << r
    return out


def _negate_input(tt: int, n: int, k: int) -> int:
    out = 0
    for r in range(1 << n):
        out |= (tt >> (r ^ (1 << k)) & 1) << r
    return out


def _cofactor(tt: int, n: int, k: int, value: int) -> int:
    """The truth table with input k fixed to `value` and removed."""
    out = 0
    for r in range(1 << (n - 1)):
        low, high = r & ((1 << k) - 1), r >> k
        src = low | (value << k) | (high << (k + 1))
        out |= (tt >> src & 1) << r
    return out


class _Hasher:
    """Node ids shared by both netlists: equal ids mean equal functions of the cut points.

    A node is a Liberty function of its input nodes, canonicalised so that equal logic hashes
    equal: buffers vanish, inverters are absorbed into the function that reads them (NAND then
    INV is AND), constant inputs are folded, and inputs are ordered by node id with the truth
    table permuted to match (commutative pins, whatever the cell)."""

    def __init__(self, lib: Library) -> None:
        self.lib = lib
        self.ids: dict[tuple, int] = {}
        self.keys: list[tuple] = []
        self._perm: dict[tuple, int] = {}

    def intern(self, key: tuple) -> int:
        i = self.ids.get(key)
        if i is None:
            i = self.ids[key] = len(self.keys)
            self.keys.append(key)
        return i

    def const(self, v: int) -> int:
        return self.intern(("const", v))

    def fn(self, tt: int, ins: list[int]) -> int:
        n = len(ins)
        k = 0
        while k < n:  # fold constants, absorb inverters
            key = self.keys[ins[k]]
            if key[0] == "const":
                tt = _cofactor(tt, n, k, key[1])
                del ins[k]
                n -= 1
                continue
            if key[0] == "fn" and key[1] == 1 and key[2] == 0b01:  # NOT(x): read x, flip the variable
                tt = _negate_input(tt, n, k)
                ins[k] = key[3][0]
            k += 1
        mask = (1 << (1 << n)) - 1
        tt &= mask
        if tt == 0 or tt == mask:
            return self.const(1 if tt else 0)
        order = sorted(range(n), key=lambda j: ins[j])
        if order != list(range(n)):
            pk = (tt, n, tuple(order))
            if pk not in self._perm:
                self._perm[pk] = _permute(tt, n, order)
            tt, ins = self._perm[pk], [ins[j] for j in order]
        if n == 1 and tt == 0b10:  # a buffer
            return ins[0]
        if n == 1 and tt == 0b01:
            inner = self.keys[ins[0]]
            if inner[0] == "fn":  # NOT of a function: the complemented function
                return self.fn(~inner[2] & ((1 << (1 << inner[1])) - 1), list(inner[3]))
        return self.intern(("fn", n, tt, tuple(ins)))

    def ids_of(self, n: Netlist, alias: dict[str, str]) -> tuple[dict[Bit, int], dict[Bit, tuple[str, str]]]:
        """Node id of every bit that something reads; and each bit's driver (inst, pin)."""
        driver: dict[Bit, tuple[str, str]] = {}
        for inst, (cell, pins) in n.insts.items():
            c = self.lib.cells.get(cell)
            outs = set(c.outputs) if c else set()
            for pin, b in pins.items():
                if pin in outs and isinstance(b, tuple):
                    driver[b] = (inst, pin)
        assigned = {lhs: rhs for lhs, rhs in n.assigns}
        inputs = set(n.inputs)
        memo: dict[Bit, int] = {}

        def node(start: Bit | int) -> int:
            if isinstance(start, int):
                return self.const(start)
            stack = [start]
            while stack:
                b = stack[-1]
                if b in memo:
                    stack.pop()
                    continue
                deps = self._deps(b, n, driver, assigned, inputs)
                missing = [d for d in deps if isinstance(d, tuple) and d not in memo]
                if missing:
                    if len(stack) > 200_000:
                        raise NetlistError("combinational loop")
                    stack += missing
                    continue
                memo[b] = self._node(b, n, driver, assigned, inputs, memo, alias)
                stack.pop()
            return memo[start]

        for inst, (cell, pins) in n.insts.items():
            for b in pins.values():
                node(b)
        for b in n.outputs:
            node(b)
        return memo, driver

    def _deps(self, b: Bit, n: Netlist, driver, assigned, inputs) -> list:
        if b in assigned:
            return [assigned[b]]
        if b in inputs or b not in driver:
            return []
        inst, _ = driver[b]
        cell, pins = n.insts[inst]
        c = self.lib.cells.get(cell)
        if c is None or c.sequential:
            return []
        return [pins.get(p) for p in c.inputs if pins.get(p) is not None]

    def _node(self, b: Bit, n: Netlist, driver, assigned, inputs, memo, alias) -> int:
        if b in assigned:
            r = assigned[b]
            return self.const(r) if isinstance(r, int) else memo[r]
        if b in inputs:
            return self.intern(("in", b))
        if b not in driver:
            return self.intern(("undriven", n.module, b))  # never equal to anything
        inst, pin = driver[b]
        cell, pins = n.insts[inst]
        c = self.lib.cells.get(cell)
        if c is not None and c.sequential:
            return self.intern(("reg", alias.get(inst, inst), pin))
        if c is None or pin not in c.truths:
            ins = tuple(self._in(pins.get(p), memo) for p in sorted(pins) if p != pin)
            return self.intern(("opaque", cell, pin, ins))
        return self.fn(c.truths[pin], [self._in(pins.get(p), memo, (n.module, inst, p)) for p in c.inputs])

    def _in(self, b, memo, where=None) -> int:
        if b is None:
            return self.intern(("floating", where))  # never equal to anything
        return self.const(b) if isinstance(b, int) else memo[b]


def _registers(n: Netlist, lib: Library) -> dict[str, str]:
    return {i: cell for i, (cell, _) in n.insts.items() if (c := lib.cells.get(cell)) is not None and c.sequential}


def _observed(n: Netlist, lib: Library, ids: dict[Bit, int], alias: dict[str, str]) -> dict[str, int]:
    """What must match: every primary output, and every register input pin (by register name)."""
    out = {f"output {b[0]}" + (f"[{b[1]}]" if b[1] is not None else ""): ids[b] for b in n.outputs}
    for inst, cell in _registers(n, lib).items():
        if inst in alias:
            continue
        pins = n.insts[inst][1]
        c = lib.cells[cell]
        for p in c.inputs:
            b = pins.get(p)
            out[f"register {inst}.{p}"] = (ids[b] if isinstance(b, tuple) else -1 - (b or 0)) if b is not None else -999
    return out


@dataclass
class Match:
    diff: list[str]  # observed points that differ; empty: proven
    alias: dict[str, str]  # a cloned register in the gate -> the register it duplicates
    gold_ids: dict[Bit, int]
    gate_ids: dict[Bit, int]

    @property
    def shared(self) -> set[int]:
        """Nodes both netlists compute: proven equal, so SAT may treat them as free inputs."""
        return set(self.gold_ids.values()) & set(self.gate_ids.values())


def structural(gold: Netlist, gate: Netlist, lib: Library) -> Match:
    """Match the gate against the gold structurally (see _Hasher).

    Registers with the same cell and the same input functions (next state, clock, reset) are one
    state element, in either netlist: a cloned flop, or a clone of a clone, is named after the
    smallest name of its class in both.  Classes are refined until they no longer change, since
    a register's inputs depend on the registers before it."""
    h = _Hasher(lib)
    alias: dict[str, str] = {}
    for _ in range(20):
        g_ids, _ = h.ids_of(gold, alias)
        t_ids, _ = h.ids_of(gate, alias)
        classes: dict[tuple, set[str]] = {}
        for n, ids in ((gold, g_ids), (gate, t_ids)):
            for r, cell in _registers(n, lib).items():
                pins = n.insts[r][1]
                sig = (cell, tuple(ids.get(pins.get(p)) if isinstance(pins.get(p), tuple) else pins.get(p)
                                   for p in lib.cells[cell].inputs))
                classes.setdefault(sig, set()).add(r)
        new = {r: min(members) for members in classes.values() if len(members) > 1 for r in members
               if r != min(members)}
        if new == alias:
            break
        alias = new
    a, b = _observed(gold, lib, g_ids, alias), _observed(gate, lib, t_ids, alias)
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return Match(diff, alias, g_ids, t_ids)


def correspond(gold: Netlist, gate: Netlist, lib: Library) -> tuple[Netlist, int]:
    """The gate with its registers named after the gold registers they correspond to, when a
    tool renamed them (qflow's routed netlist: DFFPOSX1_1 for Yosys's _906_); otherwise the gate
    as it is.  Correspondence is the greatest fixpoint: one class per register cell at first,
    then classes split until the members of each have the same input functions (next state,
    clock, set/reset) in terms of the classes.  Returns the gate and how many registers moved."""
    mine = _registers(gate, lib)
    theirs = _registers(gold, lib)
    if all(r in mine for r in theirs):
        return gate, 0  # every gold register is still there by name (an ECO keeps them)
    nets = {"gold": gold, "gate": gate}
    regs = {("gold", r): c for r, c in theirs.items()} | {("gate", r): c for r, c in mine.items()}
    label = {k: f"cell {c}" for k, c in regs.items()}
    h = _Hasher(lib)
    for _ in range(len(regs) + 1):  # each pass splits a class or ends
        ids = {side: h.ids_of(n, {r: label[(x, r)] for x, r in regs if x == side})[0] for side, n in nets.items()}
        names: dict[tuple, str] = {}
        new = {}
        for (side, r), cell in sorted(regs.items()):
            pins = nets[side].insts[r][1]
            sig = (label[(side, r)], cell, tuple(ids[side].get(b) if isinstance(b := pins.get(p), tuple) else b
                                                 for p in lib.cells[cell].inputs))
            new[(side, r)] = names.setdefault(sig, f"class {len(names)}")
        stable = len(names) == len(set(label.values()))
        label = new
        if stable:
            break
    members: dict[str, tuple[list[str], list[str]]] = {}
    for (side, r), k in sorted(label.items()):
        members.setdefault(k, ([], []))[side == "gate"].append(r)
    rename = {}
    for k, (golds, gates) in members.items():
        for i, r in enumerate(gates):  # extra gate members are clones: the structural match merges them
            rename[r] = golds[i] if i < len(golds) else f"n2corr {k} {i}"
    taken = set(rename.values())
    insts = {(rename[i] if i in rename else f"n2gate {i}" if i in taken else i): v for i, v in gate.insts.items()}
    moved = sum(1 for r, to in rename.items() if r != to)
    return Netlist(gate.module, gate.inputs, gate.outputs, gate.widths, insts, gate.assigns), moved


# --- SAT on the cones that differ ----------------------------------------------------------------------

def _cone_module(n: Netlist, lib: Library, module: str, wanted: list[str], alias: dict[str, str],
                 ports: dict[str, str], cuts: dict[Bit, str]) -> str:
    """A module holding only the logic behind `wanted` observed points, cut at inputs, registers
    (their outputs become module inputs named after the register and pin) and at `cuts`."""
    # one worklist walk backwards from the observed points; `wire` names a bit and queues it
    driver: dict[Bit, tuple[str, str]] = {}
    for inst, (cell, pins) in n.insts.items():
        c = lib.cells.get(cell)
        for pin, b in pins.items():
            if c and pin in c.outputs and isinstance(b, tuple):
                driver[b] = (inst, pin)
    assigned = {lhs: rhs for lhs, rhs in n.assigns}
    inputs = set(n.inputs)
    wires: dict[Bit, str] = {}
    body: list[str] = []
    used_ports: set[str] = set()
    seen_inst: set[str] = set()

    def wire(b: Bit | int | None) -> str:
        if b is None:
            return "1'bx"
        if isinstance(b, int):
            return f"1'b{b}"
        if b in cuts:
            return cuts[b]
        if b in wires:
            return wires[b]
        w = f"w{len(wires)}"
        wires[b] = w
        todo.append(b)
        return w

    todo: list[Bit] = []
    outs: list[tuple[str, str]] = []
    for key in wanted:
        if key.startswith("output "):
            b = next(x for x in n.outputs if f"output {x[0]}" + (f"[{x[1]}]" if x[1] is not None else "") == key)
        else:
            inst, pin = key[len("register "):].rsplit(".", 1)
            b = n.insts[inst][1].get(pin) if inst in n.insts else None
        outs.append((ports[key], wire(b) if b is not None else "1'bx"))
    while todo:
        b = todo.pop()
        w = wires[b]
        if b in assigned:
            body.append(f"  assign {w} = {wire(assigned[b])};")
        elif b in inputs:
            p = ports[f"in {b[0]}" + (f"[{b[1]}]" if b[1] is not None else "")]
            used_ports.add(p)
            body.append(f"  assign {w} = {p};")
        elif b not in driver:
            body.append(f"  assign {w} = 1'bx;")
        else:
            inst, pin = driver[b]
            cell, pins = n.insts[inst]
            c = lib.cells.get(cell)
            if c is not None and c.sequential:
                p = ports[f"reg {alias.get(inst, inst)}.{pin}"]
                used_ports.add(p)
                body.append(f"  assign {w} = {p};")
            elif inst not in seen_inst:
                seen_inst.add(inst)
                conns = [f".{q}({wire(qb)})" for q, qb in sorted(pins.items())]
                body.append(f"  {cell} c{len(seen_inst)} ({', '.join(conns)});")
    decl = [f"  input {p};" for p in sorted(set(ports.values())) if p.startswith("i")]
    decl += [f"  output {p};" for p, _ in outs]
    decl += [f"  wire {w};" for w in wires.values()]
    body += [f"  assign {p} = {w};" for p, w in outs]
    port_list = sorted({p for p in ports.values() if p.startswith("i")}) + [p for p, _ in outs]
    return f"module {module} ({', '.join(port_list)});\n" + "\n".join(decl + body) + "\nendmodule\n"


class _Aig:
    """An and-inverter graph with structural hashing, written as binary AIGER for ABC.
    A literal is 2*node (+1 when inverted); node 0 is the constant false."""

    def __init__(self) -> None:
        self.inputs: dict[str, int] = {}  # name -> node
        self.ands: dict[int, tuple[int, int]] = {}  # node -> (lit, lit)
        self.table: dict[tuple[int, int], int] = {}
        self.next = 1
        self._tt: dict[tuple, int] = {}

    def input(self, name: str) -> int:
        if name not in self.inputs:
            self.inputs[name] = self.next
            self.next += 1
        return 2 * self.inputs[name]

    def AND(self, a: int, b: int) -> int:
        if a == 0 or b == 0 or a == b ^ 1:
            return 0
        if a == 1:
            return b
        if b == 1 or a == b:
            return a
        key = (min(a, b), max(a, b))
        if key not in self.table:
            self.table[key] = self.next
            self.ands[self.next] = key
            self.next += 1
        return 2 * self.table[key]

    def OR(self, a: int, b: int) -> int:
        return self.AND(a ^ 1, b ^ 1) ^ 1

    def XOR(self, a: int, b: int) -> int:
        return self.OR(self.AND(a, b ^ 1), self.AND(a ^ 1, b))

    def function(self, tt: int, ins: list[int]) -> int:
        """A truth table over `ins` (input k = bit k of the row) by Shannon expansion."""
        n = len(ins)
        mask = (1 << (1 << n)) - 1
        tt &= mask
        if tt == 0:
            return 0
        if tt == mask:
            return 1
        key = (tt, n, tuple(ins))
        if key not in self._tt:
            hi, lo = _cofactor(tt, n, n - 1, 1), _cofactor(tt, n, n - 1, 0)
            f1, f0 = self.function(hi, ins[:-1]), self.function(lo, ins[:-1])
            x = ins[-1]
            self._tt[key] = self.OR(self.AND(x, f1), self.AND(x ^ 1, f0))
        return self._tt[key]

    def binary(self, outputs: list[int]) -> bytes:
        """Binary AIGER: inputs are nodes 1..I, AND nodes follow in creation (topological) order."""
        order = sorted(self.inputs.values()) + sorted(self.ands)
        num = {node: k + 1 for k, node in enumerate(order)}

        def lit(x: int) -> int:
            return 0 if x < 2 else 2 * num[x >> 1] + (x & 1)
        out = bytearray(f"aig {len(order)} {len(self.inputs)} 0 {len(outputs)} {len(self.ands)}\n".encode())
        out += "".join(f"{lit(o)}\n" for o in outputs).encode()
        for node in sorted(self.ands):
            a, b = sorted((lit(x) for x in self.ands[node]), reverse=True)
            for delta in (2 * num[node] - a, a - b):
                while delta >= 0x80:
                    out.append(delta & 0x7F | 0x80)
                    delta >>= 7
                out.append(delta)
        return bytes(out)


def _aig_cone(aig: _Aig, n: Netlist, lib: Library, start: Bit | int | None, alias: dict[str, str],
              cuts: dict[Bit, str], memo: dict) -> int | None:
    """The literal of a bit as a function of inputs, registers and cut points; None when a cell
    has no function the Liberty states (a tri-state buffer, a black box)."""
    if start is None:
        return None
    if isinstance(start, int):
        return start
    driver, assigned, inputs = memo.setdefault("_ctx", _context(n, lib))
    stack = [start]
    while stack:
        b = stack[-1]
        if b in memo:
            stack.pop()
            continue
        if b in cuts:
            memo[b] = aig.input(cuts[b])
        elif b in assigned:
            r = assigned[b]
            if isinstance(r, tuple) and r not in memo:
                stack.append(r)
                continue
            memo[b] = r if isinstance(r, int) else memo[r]
        elif b in inputs:
            memo[b] = aig.input("in " + b[0] + (f"[{b[1]}]" if b[1] is not None else ""))
        elif b not in driver:
            return None
        else:
            inst, pin = driver[b]
            cell, pins = n.insts[inst]
            c = lib.cells.get(cell)
            if c is not None and c.sequential:
                memo[b] = aig.input(f"reg {alias.get(inst, inst)}.{pin}")
            elif c is None or pin not in c.truths:
                return None
            else:
                todo = [pins.get(p) for p in c.inputs if isinstance(pins.get(p), tuple) and pins.get(p) not in memo]
                if todo:
                    stack += todo
                    continue
                ins = [pins.get(p) for p in c.inputs]
                if any(x is None for x in ins) or any(isinstance(x, tuple) and memo.get(x) is None for x in ins):
                    return None
                memo[b] = aig.function(c.truths[pin], [x if isinstance(x, int) else memo[x] for x in ins])
        stack.pop()
    return memo[start]


def _context(n: Netlist, lib: Library):
    driver: dict[Bit, tuple[str, str]] = {}
    for inst, (cell, pins) in n.insts.items():
        c = lib.cells.get(cell)
        for pin, b in pins.items():
            if c and pin in c.outputs and isinstance(b, tuple):
                driver[b] = (inst, pin)
    return driver, {lhs: rhs for lhs, rhs in n.assigns}, set(n.inputs)


def _observed_bit(n: Netlist, key: str) -> Bit | int | None:
    if key.startswith("output "):
        return next((x for x in n.outputs if f"output {x[0]}" + (f"[{x[1]}]" if x[1] is not None else "") == key), None)
    inst, pin = key[len("register "):].rsplit(".", 1)
    return n.insts[inst][1].get(pin) if inst in n.insts else None


def miter_aig(gold: Netlist, gate: Netlist, lib: Library, match: Match, cut: bool) -> bytes | None:
    """One output: the OR over the differing observed points of gold XOR gate, built straight
    from the Liberty's truth tables (no Yosys).  None when a cone holds a cell with no function."""
    aig = _Aig()
    shared = match.shared if cut else set()
    gcuts = {b: f"node {i}" for b, i in match.gold_ids.items() if i in shared}
    tcuts = {b: f"node {i}" for b, i in match.gate_ids.items() if i in shared}
    gmemo: dict = {}
    tmemo: dict = {}
    diff = 0
    for key in match.diff:
        g = _aig_cone(aig, gold, lib, _observed_bit(gold, key), match.alias, gcuts, gmemo)
        t = _aig_cone(aig, gate, lib, _observed_bit(gate, key), match.alias, tcuts, tmemo)
        if g is None or t is None:
            return None
        diff = aig.OR(diff, aig.XOR(g, t))
    return aig.binary([diff])


def defects(n: Netlist, lib: Library) -> list[str]:
    """Pins that make a netlist meaningless whatever it is compared with: instance inputs with no
    net, and nets read but driven by nothing."""
    driven = set(n.inputs) | {lhs for lhs, _ in n.assigns}
    for cell, pins in n.insts.values():
        c = lib.cells.get(cell)
        driven |= {b for p, b in pins.items() if c and p in c.outputs and isinstance(b, tuple)}
    out = []
    for inst, (cell, pins) in n.insts.items():
        c = lib.cells.get(cell)
        for p in (c.inputs if c else ()):
            b = pins.get(p)
            if b is None:
                out.append(f"{inst}.{p} is not connected")
            elif isinstance(b, tuple) and b not in driven:
                out.append(f"{inst}.{p} reads {b[0]}{'' if b[1] is None else f'[{b[1]}]'}, which nothing drives")
    return out


def sat_cones(gold: Netlist, gate: Netlist, lib_paths: list[Path], lib: Library, match: Match, workdir: Path,
              timeout_s: float = 120.0) -> tuple[bool, str, str]:
    """Prove the mismatched observed points equal over their cones, cut at every node both
    netlists share (proven equal structurally), so the solver sees only what changed.  Yosys
    builds the miter; ABC's &cec (SAT sweeping guided by simulation) proves it, where one SAT
    call over a multiplier cone would not finish.  A difference found with the cuts may be
    spurious (cut values that cannot occur together), so it is checked again on whole cones;
    Yosys's sat then names the inputs.  Returns (proven, detail, counterexample)."""
    workdir.mkdir(parents=True, exist_ok=True)
    ports: dict[str, str] = {}
    for b in sorted(set(gold.inputs) | set(gate.inputs), key=str):
        ports[f"in {b[0]}" + (f"[{b[1]}]" if b[1] is not None else "")] = f"i{len(ports)}"
    for n in (gold, gate):
        for r, cell in sorted(_registers(n, lib).items()):
            for p in lib.cells[cell].outputs:
                ports.setdefault(f"reg {match.alias.get(r, r)}.{p}", f"i{len(ports)}")
    shared = match.shared
    cut_ports = {i: f"i{len(ports) + k}" for k, i in enumerate(sorted(shared))}
    for i, p in cut_ports.items():
        ports[f"node {i}"] = p
    for k, key in enumerate(match.diff):
        ports[key] = f"o{k}"
    # Cuts help a local change; after a restructuring, cut values are rarely independent and a
    # spurious difference only costs a second miter, so many differing outputs go straight to
    # whole cones.
    for cut in ((True, False) if len(match.diff) <= 8 else (False,)):
        gcuts = {b: cut_ports[i] for b, i in match.gold_ids.items() if i in shared} if cut else {}
        tcuts = {b: cut_ports[i] for b, i in match.gate_ids.items() if i in shared} if cut else {}
        (workdir / "gold.v").write_text(_cone_module(gold, lib, "gold", match.diff, match.alias, ports, gcuts))
        (workdir / "gate.v").write_text(_cone_module(gate, lib, "gate", match.diff, match.alias, ports, tcuts))
        aig = miter_aig(gold, gate, lib, match, cut)
        verdict = _abc_cec(aig, workdir, timeout_s) if aig is not None else _cec(lib_paths, workdir, timeout_s)
        if verdict is True:
            how = "over the changed cones" if cut else "over whole cones"
            return True, f"ABC &cec proved {len(match.diff)} output(s) {how}", ""
        if verdict is None:
            return False, "not proven: the equivalence check did not finish", ""
    cex = _counterexample(lib_paths, workdir, ports, timeout_s / 4)
    return False, "a counterexample: the outputs differ" if cex else "not equivalent (ABC &cec)", cex


def _abc_cec(aig: bytes, workdir: Path, timeout_s: float) -> bool | None:
    """ABC &cec on a miter AIG: True equivalent, False not, None when ABC is missing or stuck."""
    import shutil

    abc = shutil.which("yosys-abc")
    if abc is None:
        return None
    (workdir / "miter.aig").write_bytes(aig)
    return _abc_miter(abc, workdir, timeout_s)


def _abc_miter(abc: str, workdir: Path, timeout_s: float) -> bool | None:
    """ABC's verdict on <workdir>/miter.aig, its log kept in cec.log."""
    import subprocess

    try:
        r = subprocess.run([abc, "-c", "&r miter.aig; &cec -m"], cwd=workdir, capture_output=True, text=True,
                           timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return None
    (workdir / "cec.log").write_text(r.stdout + r.stderr)
    if "Networks are equivalent" in r.stdout:
        return True
    if "NOT EQUIVALENT" in r.stdout:
        return False
    return None


def _cec(lib_paths: list[Path], workdir: Path, timeout_s: float) -> bool | None:
    """The same through Yosys (a cone with a cell whose function only Yosys's Liberty reader
    models): True equivalent, False not, None when the tools failed or ran out of time."""
    import shutil

    from noodle2.engine.quote import yosys_word
    from noodle2.engine.tools.base import TrialFailure
    from noodle2.engine.tools.synthesis.yosys import run_yosys

    libs = " ".join(yosys_word(_rel(p, workdir)) for p in lib_paths)
    try:
        run_yosys(f"read_liberty -ignore_miss_func {libs}\nread_verilog gold.v gate.v\nflatten\n"
                  "miter -equiv -flatten gold gate miter\nhierarchy -top miter\ntechmap\nopt_clean\naigmap\n"
                  "setundef -zero\nwrite_aiger -zinit miter.aig\n", workdir, "miter", timeout_s)
    except TrialFailure:
        return None
    abc = shutil.which("yosys-abc")
    return None if abc is None else _abc_miter(abc, workdir, timeout_s)


def _counterexample(lib_paths: list[Path], workdir: Path, ports: dict[str, str], timeout_s: float) -> str:
    """Input values that make the whole cones differ, named as in the netlists (Yosys sat)."""
    from noodle2.engine.quote import yosys_word
    from noodle2.engine.tools.base import TrialFailure
    from noodle2.engine.tools.synthesis.yosys import run_yosys

    libs = " ".join(yosys_word(_rel(p, workdir)) for p in lib_paths)
    try:
        run_yosys(f"read_liberty -ignore_miss_func {libs}\nread_verilog gold.v gate.v\nflatten\n"
                  "miter -equiv -flatten -make_outputs -ignore_gold_x gold gate miter\nhierarchy -top miter\n"
                  "sat -verify -prove trigger 0 -show-inputs -show-outputs miter\n", workdir, "sat", timeout_s)
        return ""
    except TrialFailure:
        pass
    log = (workdir / "sat.log").read_text(errors="replace") if (workdir / "sat.log").exists() else ""
    if "model found: FAIL" not in log:
        return ""
    names = {v: k for k, v in ports.items()}
    return "\n".join(_rename(ln, names) for ln in log.splitlines() if re.match(r"\s+\\(in|gold|gate)_", ln))


def _rel(p: Path, base: Path) -> str:
    import os

    return os.path.relpath(p, base)


def _rename(line: str, names: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        kind, port = m.group(1), m.group(2)
        return f"{kind}:{names.get(port, port)}"
    return re.sub(r"\\(in|gold|gate)_([io]\d+)", sub, line)


def prove(parent: Path, child: Path, lib_paths: list[Path], lib: Library, workdir: Path) -> Outcome:
    """Is `child` equivalent to `parent`?  Structural matching, then SAT on what differs."""
    t0 = time.perf_counter()
    try:
        gold, gate = parse_netlist(parent.read_text()), parse_netlist(child.read_text())
        broken = defects(gate, lib)
        if broken:
            return Outcome(False, "structural", time.perf_counter() - t0,
                           f"{len(broken)} broken pin(s): {'; '.join(broken[:3])}", broken[:20])
        gate, moved = correspond(gold, gate, lib)
        match = structural(gold, gate, lib)
    except (NetlistError, KeyError, ValueError) as e:
        return Outcome(False, "none", time.perf_counter() - t0, f"cannot compare the netlists: {e}")
    if not match.diff:
        extra = f"; {len(match.alias)} cloned register(s) matched" if match.alias else ""
        extra += f"; {moved} renamed register(s) matched by structure" if moved else ""
        return Outcome(True, "structural", time.perf_counter() - t0, f"structurally equal{extra}")
    ok, detail, cex = sat_cones(gold, gate, lib_paths, lib, match, workdir)
    if cex:
        (workdir / "counterexample.txt").write_text(
            f"# inputs that make {child.name} differ from {parent.name}\n# mismatched: "
            f"{', '.join(match.diff[:20])}\n{cex}\n")
    return Outcome(ok, "sat", time.perf_counter() - t0, detail, match.diff, cex)
