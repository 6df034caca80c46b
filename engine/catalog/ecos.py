"""The ECO catalog: names, classes, typed parameters with legal ranges.

The catalog is tool-independent metadata; each tool adapter implements the ECOs it supports
(OpenSTA renders them as Tcl).  An ECO's class is not a label: `engine.policy.safety` decides
legality from it and `engine.tools.integrity` enforces what the class may change in a netlist.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


class EcoClass(str, Enum):
    TOPOLOGY_NEUTRAL = "topology_neutral"  # cell types may change; instances and nets may not
    PLACEMENT_LOCAL = "placement_local"  # may add a bounded number of instances and nets
    ROUTING_AFFECTING = "routing_affecting"  # may rewire pins of existing nets; no new cells
    GLOBAL_DISRUPTIVE = "global_disruptive"  # may rebuild the whole netlist


@dataclass(frozen=True)
class ParamSpec:
    name: str
    kind: type  # int or float
    lo: float
    hi: float
    default: float
    doc: str
    span: str | None = None  # a base-case metric that bounds sampling when the stage sets no range

    def check(self, value: object) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{self.name} must be a number"
        if self.kind is int and not float(value).is_integer():
            return f"{self.name} must be an integer"
        if not (self.lo <= value <= self.hi):
            return f"{self.name}={value} outside legal range [{self.lo:g}, {self.hi:g}]"
        return None


@dataclass(frozen=True)
class EcoDef:
    name: str
    eco_class: EcoClass
    description: str
    params: tuple[ParamSpec, ...] = ()
    max_new_instances: int = 0  # integrity bound for placement_local ECOs
    physical: bool = False  # its knobs act in place and route: legal only in the route modes
    tcl: str | None = None  # a custom ECO's proc body (built-ins live in eco_lib.tcl)
    source: str = "built-in"  # built-in, the study file, an ECO file, or a plugin

    def param(self, name: str) -> ParamSpec | None:
        return next((p for p in self.params if p.name == name), None)

    def defaults(self) -> dict[str, float]:
        return {p.name: p.default for p in self.params}


_P = ParamSpec
CATALOG: dict[str, EcoDef] = {
    e.name: e
    for e in [
        EcoDef("noop", EcoClass.TOPOLOGY_NEUTRAL, "Change nothing; measures the parent as it is."),
        EcoDef(
            "resize_critical",
            EcoClass.TOPOLOGY_NEUTRAL,
            "Upsize the drivers on the K worst paths to the next stronger cell of their Liberty "
            "family; each resize is kept only if WNS/TNS improve.",
            (
                _P("paths", int, 1, 50, 5, "worst paths (one per endpoint) to walk"),
                _P("max_cells", int, 1, 200, 20, "cap on resized cells"),
            ),
        ),
        EcoDef(
            "downsize_noncritical",
            EcoClass.TOPOLOGY_NEUTRAL,
            "Downsize cells whose output slack exceeds a margin: recovers area and power.",
            (
                _P("margin_ps", float, 0, 5000, 500, "only cells with slack above this", "slack_max_ps"),
                _P("max_cells", int, 1, 2000, 200, "cap on resized cells"),
            ),
        ),
        EcoDef(
            "buffer_fanout",
            EcoClass.PLACEMENT_LOCAL,
            "Put the off-path loads of high-fanout critical nets behind new buffering: every buffer "
            "size, inverter pairs and a tree are tried, the best kept only if WNS/TNS improve.",
            (
                _P("paths", int, 1, 50, 5, "worst paths to search for nets"),
                _P("min_fanout", int, 2, 64, 4, "only nets with at least this fanout"),
                _P("max_nets", int, 1, 20, 3, "cap on buffered nets"),
                _P("tree_fanout", int, 2, 64, 8, "loads per buffer when a tree is tried"),
            ),
            max_new_instances=64,
        ),
        EcoDef(
            "clone_driver",
            EcoClass.PLACEMENT_LOCAL,
            "Duplicate a critical high-fanout driver; the copy takes the on-path or the off-path "
            "loads, whichever improves WNS/TNS (else nothing is kept).",
            (
                _P("paths", int, 1, 50, 5, "worst paths to search for drivers"),
                _P("min_fanout", int, 2, 64, 6, "only drivers with at least this fanout"),
                _P("max_clones", int, 1, 10, 1, "cap on cloned drivers"),
            ),
            max_new_instances=10,
        ),
        EcoDef(
            "upsize_all",
            EcoClass.GLOBAL_DISRUPTIVE,
            "Upsize every resizable cell whose slack is below a margin: a blunt, design-wide change.",
            (_P("margin_ps", float, -5000, 5000, 0, "upsize cells with slack below this"),),
        ),
        EcoDef(
            "resynth_cone",
            EcoClass.GLOBAL_DISRUPTIVE,
            "Re-synthesise the fan-in cone of the worst endpoints with Yosys/ABC for delay and splice it "
            "back; kept only if it is proven equivalent and WNS/TNS improve.",
            (
                _P("paths", int, 1, 500, 30, "worst endpoints whose fan-in cone is rebuilt"),
                _P("depth", int, 2, 500, 60, "levels of cells before the endpoints"),
                _P("delay_target_ps", float, 50, 50000, 1000, "ABC's delay target for mapping and sizing"),
            ),
        ),
        EcoDef(
            "vt_swap",
            EcoClass.TOPOLOGY_NEUTRAL,
            "Move drivers on the worst paths to a faster threshold voltage (kept only if WNS/TNS improve), "
            "then cells with slack to spare to a slower, less leaky one while WNS/TNS hold.  The same cell "
            "and footprint at another VT, found in the Liberty (ASAP7's _R, _L, _SL).",
            (
                _P("paths", int, 0, 50, 5, "worst paths whose drivers may speed up (0: only recover leakage)"),
                _P("max_cells", int, 1, 5000, 50, "cap on swapped cells"),
                _P("margin_ps", float, 0, 5000, 100, "cells with slack above this may slow down to leak less",
                   "slack_max_ps"),
            ),
        ),
        EcoDef(
            "repair_design",
            EcoClass.PLACEMENT_LOCAL,
            "Repair every net over its max-capacitance, max-transition or max-fanout limit, worst first: a "
            "stronger driver from its Liberty family, else its loads behind a tree of the strongest buffer. "
            "A repair is kept when violations fall and WNS loses no more than a tolerance.",
            (
                _P("max_nets", int, 1, 5000, 500, "cap on repaired nets"),
                _P("max_fanout", int, 0, 1000, 0, "loads a net may drive (0: no fanout limit)"),
                _P("tree_fanout", int, 2, 64, 8, "loads per buffer in a repair tree"),
                _P("wns_loss_ps", float, 0, 10000, 0, "how much WNS a repair may cost"),
            ),
            max_new_instances=40_000,
        ),
        EcoDef(
            "pin_swap",
            EcoClass.ROUTING_AFFECTING,
            "Move the late-arriving signal to another pin of its commutative group (from the "
            "Liberty's function); a swap is kept only if WNS/TNS improve.",
            (
                _P("paths", int, 1, 50, 5, "worst paths to walk"),
                _P("max_swaps", int, 1, 50, 4, "cap on swapped gates"),
            ),
        ),
        EcoDef(
            "replace",
            EcoClass.GLOBAL_DISRUPTIVE,
            "Place the design again with another graywolf seed and, optionally, a target density "
            "(fill cells spread through the rows): every cell may move.  Route modes only.",
            (
                _P("seed", int, 1, 1_000_000, 1, "graywolf's random seed"),
                _P("density", float, 0.3, 1, 1, "target placement density: below 1, fill cells spread the "
                   "cells out; 1 packs them as qflow does by default"),
            ),
            physical=True,
        ),
        EcoDef(
            "reroute",
            EcoClass.ROUTING_AFFECTING,
            "Route again with another qrouter effort and number of metal layers: wires move, cells "
            "stay where the parent's placement knobs put them.  Route modes only.",
            (
                _P("effort", int, 1, 200, 10, "qrouter's effort: how long it keeps ripping up and rerouting"),
                _P("layers", int, 0, 6, 0, "metal layers the router may use; 0: all the technology has"),
            ),
            physical=True,
        ),
    ]
}

ROUTE_MODES = ("route", "route_power")


def eco(name: str) -> EcoDef:
    return CATALOG[name]


def catalog(spec: Any) -> dict[str, EcoDef]:
    """The built-in ECOs and the study's own (inline, from ECO files and from plugins, all
    resolved into the spec when it was parsed, so this stays pure)."""
    custom = getattr(getattr(spec, "custom", None), "ecos", None) or []
    return {**CATALOG, **definitions(custom)} if custom else CATALOG


def definitions(custom: Any) -> dict[str, EcoDef]:
    """[[custom.ecos]] entries (spec models) as catalog entries."""
    return {c.name: EcoDef(c.name, EcoClass(c.eco_class), c.description, tuple(
        ParamSpec(p.name, int if p.kind == "int" else float, p.min, p.max, p.default, p.doc) for p in c.params),
        max_new_instances=c.max_new_instances, tcl=c.tcl, source=c.source) for c in custom}
