"""The winner's change list: what an engineer carries back into the P&R flow.

The cell-level difference between the base netlist and the winner's — resized instances, added
buffers and clones with their nets, swapped and reconnected pins, removed cells — as a table, and
as one OpenSTA Tcl script that replays it on the base netlist.  The script finds every existing
net and instance by its full name through one pass over the design (`get_nets NAME` silently
misses Yosys's escaped names), then edits objects only.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from noodle2.engine.quote import tcl_word
from noodle2.engine.tools.netlist import Bit, Netlist


def sta_name(b: Bit) -> str:
    """A bit as OpenSTA names it: the net, then [index] for a bus bit."""
    return b[0] if b[1] is None else f"{b[0]}[{b[1]}]"


@dataclass
class Changes:
    resized: list[tuple[str, str, str]] = field(default_factory=list)  # instance, old cell, new cell
    added: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)  # instance, cell, pin -> net
    removed: list[tuple[str, str]] = field(default_factory=list)  # instance, cell
    swapped: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)  # instance, cell, pin -> its new net
    reconnected: list[tuple[str, str, str, str]] = field(default_factory=list)  # instance, pin, old net, new net
    new_nets: list[str] = field(default_factory=list)
    assigns_differ: bool = False

    @property
    def empty(self) -> bool:
        return not (self.resized or self.added or self.removed or self.swapped or self.reconnected)


NO_NET = "(none)"  # a pin connected to nothing


def _net(b: Bit | int | None) -> str:
    if b is None:
        return NO_NET
    return f"1'b{b}" if isinstance(b, int) else sta_name(b)


def diff(base: Netlist, win: Netlist) -> Changes:
    c = Changes(assigns_differ=sorted(map(str, base.assigns)) != sorted(map(str, win.assigns)))
    base_nets = {_net(b) for _, pins in base.insts.values() for b in pins.values()}
    base_nets |= {sta_name(b) for b in base.inputs + base.outputs}
    for name in sorted(set(base.insts) - set(win.insts)):
        c.removed.append((name, base.insts[name][0]))
    for name, (cell, pins) in win.insts.items():
        if name not in base.insts:
            c.added.append((name, cell, {p: _net(b) for p, b in sorted(pins.items())}))
            continue
        old_cell, old_pins = base.insts[name]
        if old_cell != cell:
            c.resized.append((name, old_cell, cell))
        moved = sorted(p for p in set(pins) | set(old_pins) if _net(pins.get(p)) != _net(old_pins.get(p)))
        if not moved:
            continue
        if all(p in pins and p in old_pins for p in moved) and \
                sorted(_net(pins[p]) for p in moved) == sorted(_net(old_pins[p]) for p in moved):
            c.swapped.append((name, cell, {p: _net(pins[p]) for p in moved}))
        else:
            for p in moved:
                c.reconnected.append((name, p, _net(old_pins.get(p)), _net(pins.get(p))))
    win_nets = {_net(b) for _, pins in win.insts.values() for b in pins.values() if not isinstance(b, int)}
    c.new_nets = sorted(win_nets - base_nets)
    return c


def rows(c: Changes) -> tuple[str, list[list[str]]]:
    """The change list: a one-line count, and one [change, where, what] row per edit."""
    out = [["resize", i, f"{a} → {b}"] for i, a, b in c.resized]
    out += [["add", i, f"{cell}: " + ", ".join(f"{p}={n}" for p, n in pins.items())] for i, cell, pins in c.added]
    out += [["swap pins", i, f"{cell}: {' ↔ '.join(ps)}"] for i, cell, ps in c.swapped]  # ps: pins, in order
    out += [["reconnect", f"{i}/{p}", f"{a} → {b}"] for i, p, a, b in c.reconnected]
    out += [["remove", i, cell] for i, cell in c.removed]
    head = (f"{len(c.resized)} resized, {len(c.added)} added ({len(c.new_nets)} new nets), {len(c.swapped)} pin swaps, "
            f"{len(c.reconnected)} reconnected pins, {len(c.removed)} removed")
    return head, out


def table_md(c: Changes) -> str:
    """The change list as a Markdown table, one row per edit."""
    head, body = rows(c)
    if not body:
        return "The winner's netlist is the base netlist: no change.\n"
    return head + "\n\n| change | where | what |\n|---|---|---|\n" + "\n".join(f"| {' | '.join(r)} |" for r in body) + "\n"


def replay_tcl(c: Changes, header: str = "", footer: str = "") -> str:
    """OpenSTA Tcl applying the change list to the base netlist already linked.  `header`
    (read_liberty, read_verilog, link_design, read_sdc) and `footer` (reports, write_verilog)
    frame it into a standalone script."""
    out = [header.rstrip(), "",
           "# --- the winner's changes, on objects found once by full name ---",
           "proc n2r_index {} {",
           "  global n2r_net n2r_inst",
           "  foreach n [get_nets *] { set n2r_net([get_full_name $n]) $n }",
           "  foreach i [get_cells *] { set n2r_inst([get_full_name $i]) $i }",
           "}",
           "proc n2r_lib_cell {name} { return [lindex [get_lib_cells */$name] 0] }",
           "proc n2r_pin {inst port} { return [sta::find_pin [get_full_name $inst]/$port] }",
           "proc n2r_connect {inst port net} {",
           "  set pin [n2r_pin $inst $port]",
           "  if {$pin ne \"NULL\" && $pin ne \"\"} { sta::disconnect_pin_cmd $pin }",
           "  if {$net ne \"\"} { sta::connect_pin_cmd $inst [[$inst cell] find_port $port] $net }",
           "}",
           "n2r_index"]
    for name in c.new_nets:
        out.append(f"set n2r_net({tcl_word(name)}) [sta::make_net_cmd {tcl_word(name)} [sta::top_instance]]")
    for name, _ in c.removed:
        out.append(f"set it [$n2r_inst({tcl_word(name)}) pin_iterator]")
        out.append("while {[$it has_next]} { set p [$it next]; if {[$p net] ne \"NULL\"} { sta::disconnect_pin_cmd $p } }")
        out.append("$it finish")
        out.append(f"sta::delete_instance_cmd $n2r_inst({tcl_word(name)})")
    for name, _, new in c.resized:
        out.append(f"sta::replace_cell_cmd $n2r_inst({tcl_word(name)}) [n2r_lib_cell {tcl_word(new)}]")
    for name, cell, _ in c.added:
        out.append(f"set n2r_inst({tcl_word(name)}) [sta::make_instance_cmd {tcl_word(name)} "
                   f"[n2r_lib_cell {tcl_word(cell)}] [sta::top_instance]]")
    for name, _, pins in c.added:
        for p, n in pins.items():
            if not n.startswith("1'b"):
                out.append(f"n2r_connect $n2r_inst({tcl_word(name)}) {tcl_word(p)} $n2r_net({tcl_word(n)})")
    edits = [(i, p, b) for i, p, _, b in c.reconnected]
    edits += [(i, p, n) for i, _, pins in c.swapped for p, n in pins.items()]
    for name, p, new in edits:
        if new.startswith("1'b"):
            raise ValueError(f"{name}/{p} is tied to a constant ({new}); the replay cannot tie pins")
        target = '""' if new == NO_NET else f"$n2r_net({tcl_word(new)})"
        out.append(f"n2r_connect $n2r_inst({tcl_word(name)}) {tcl_word(p)} {target}")
    if footer:
        out += ["", footer.rstrip()]
    return "\n".join(out) + "\n"

