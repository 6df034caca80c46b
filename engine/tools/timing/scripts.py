"""The Tcl a trial runs: the design read (design.py), the ECO library (eco_lib.tcl), one ECO
call, then integrity checks, timing reports and the child netlist written."""
from __future__ import annotations

import os
from pathlib import Path

from noodle2.engine.catalog.ecos import EcoDef
from noodle2.engine.quote import tcl_word
from noodle2.engine.tools.base import TrialContext
from noodle2.engine.tools.timing.design import Quote, StaDesign

ECO_LIB = Path(__file__).with_name("eco_lib.tcl")
WORST_PATHS = 5


def quoter(ctx: TrialContext) -> Quote:
    """Paths as Tcl words relative to the trial directory, where sta runs."""
    return lambda p: tcl_word(os.path.relpath(p, ctx.trial_dir))


def custom_proc(eco: EcoDef) -> str:
    """A custom ECO's body as a proc like the built-ins (n2_eco_<name>)."""
    if eco.tcl is None:
        return ""
    return (f"# custom ECO {eco.name} ({eco.source})\n"
            f"proc n2_eco_{eco.name} {{{' '.join(p.name for p in eco.params)}}} {{\n{eco.tcl}\n}}\n")


def trial_script(design: StaDesign, ctx: TrialContext, eco: EcoDef, eco_call: str | None = None,
                 extra_tcl: str = "", netlist: Path | None = None) -> str:
    """The trial's Tcl.  `eco_call`/`extra_tcl` let tests run an ECO of their own; `netlist`
    replaces the parent's (re-synthesis measures the netlist its driver wrote)."""
    args = " ".join(tcl_word(str(ctx.params.get(p.name, p.default))) for p in eco.params)
    call = eco_call or f"n2_eco_{eco.name} {args}".rstrip()
    power = ctx.mode.endswith("_power")
    rel = quoter(ctx)
    parent = netlist or ctx.parent_dir / f"{design.top}.v"
    params = " ".join(f"{k}={v}" for k, v in ctx.params.items())
    return f"""# noodle2 trial {ctx.case_id}: {eco.name} {params} ({eco.eco_class.value}), mode {ctx.mode}
# paths are relative to this trial's directory; the parent netlist is read-only
set n2_tag {tcl_word(ctx.case_id)}
set n2_t0 [clock milliseconds]
{design.facts()}
{ECO_LIB.read_text()}
{custom_proc(eco)}{extra_tcl}
{design.read(rel, rel(parent))}
{"set_power_activity -global -activity 0.1" if power else ""}
n2_metric time_unit_ps [n2_unit_ps]
n2_metric unconstrained_before [n2_unconstrained_endpoints]
n2_phase load
set n2_changes [{call}]
n2_phase eco
{_measure_as_written(design, rel, power)}
n2_metric eco_changes $n2_changes
n2_metric unconstrained_endpoints [n2_unconstrained_endpoints]
n2_integrity
n2_metric failing_endpoints [n2_failing_endpoints]
n2_report sta {WORST_PATHS} {int(power)}
n2_corner_metrics
{"n2_metric slack_max_ps [n2_slack_max]" if eco.name == "noop" else ""}
n2_electrical sta
n2_hold sta {WORST_PATHS}
n2_phase timing
{"" if design.spef is not None else f"write_verilog {tcl_word(design.top + '.raw.v')}"}
n2_phase write
n2_metric done 1
exit
"""


def _measure_as_written(design: StaDesign, rel: Quote, power: bool) -> str:
    """With a SPEF, the child is timed as its own children will read it: written, then read and
    linked again in this process (the Liberty stays loaded), its SPEF and estimates applied
    afresh.  An edit made after read_spef leaves a moved pin's node where it was, which no
    later read reproduces.  Without a SPEF the design in memory is the written one."""
    if design.spef is None:
        return "n2_estimate_wires"
    raw = tcl_word(design.top + ".raw.v")
    return "\n".join([f"write_verilog {raw}", design.read(rel, raw, with_liberty=False),
                      "set_power_activity -global -activity 0.1" if power else ""])


def post_route_script(design: StaDesign, ctx: TrialContext) -> str:
    """Timing of the routed netlist: qrouter's interconnect delays (SDF) and routed wire
    capacitance (wirecap.tcl, from the SPEF's net totals) on qflow's own netlist."""
    rel = quoter(ctx)
    libs = "\n".join(f"read_liberty {rel(p)}" for p in design.libs)
    pnr = f"pnr/{design.top}"
    power = ctx.mode.endswith("_power")
    return f"""# noodle2 post-route timing of {ctx.case_id} (mode {ctx.mode}): qflow's routed netlist
set n2_mfile [open post.n2m.txt w]
{design.facts()}
{ECO_LIB.read_text()}
{libs}
read_verilog {tcl_word(pnr + ".timing.v")}
link_design {tcl_word(design.top)}
{design.read_sdc(rel(design.sdc))}
read_sdf {tcl_word(pnr + ".sdf")}
source {tcl_word("pnr/wirecap.tcl")}
{"set_power_activity -global -activity 0.1" if power else ""}
n2_integrity
n2_metric failing_endpoints [n2_failing_endpoints]
n2_report post {WORST_PATHS} {int(power)}
n2_electrical post
n2_hold post {WORST_PATHS}
n2_metric done 1
exit
"""
