"""What each ECO class may change in a netlist.  Pure: compares cell usage before and after."""
from __future__ import annotations

from collections import Counter

from noodle2.engine.catalog.ecos import EcoClass, EcoDef


def class_violation(eco: EcoDef, before: Counter[str], after: Counter[str]) -> str | None:
    """None when the change fits the ECO's class, else the reason it does not."""
    n0, n1 = sum(before.values()), sum(after.values())
    if eco.name == "noop" and before != after:
        return "noop changed the netlist"
    if eco.eco_class is EcoClass.TOPOLOGY_NEUTRAL and n1 != n0:
        return f"topology_neutral ECO changed the instance count {n0} -> {n1}"
    if eco.eco_class is EcoClass.ROUTING_AFFECTING and before != after:
        return "routing_affecting ECO may rewire pins but changed the cells"
    if eco.eco_class is EcoClass.PLACEMENT_LOCAL:
        if n1 < n0:
            return f"placement_local ECO removed {n0 - n1} instance(s)"
        if n1 - n0 > eco.max_new_instances:
            return f"placement_local ECO added {n1 - n0} instances (limit {eco.max_new_instances})"
    return None
