"""OpenSTA trials: one `sta` run reads the parent's netlist, applies one ECO in Tcl, checks
integrity, writes the child's netlist and the reports that metrics are parsed from."""
from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from engine.ecos import CATALOG
from engine.executors import Command, ExecResult
from engine.policy.integrity import class_violation
from engine.spec import Study
from engine.tools.base import TrialContext, TrialFailure, tail
from engine.tools.netlist import area_um2, cell_usage, declare_wires, liberty_areas
from engine.tools.sta_parsers import ParseError, parse_n2m, parse_paths, parse_power, parse_wns_tns
from engine.tools.tech import resolve_tech
from engine.tools.yosys import synthesise, tool_version

ECO_LIB = Path(__file__).with_name("eco_lib.tcl")
WORST_PATHS = 5


def tcl_path(p: Path) -> str:
    return "{" + str(p) + "}"


class OpenSTATool:
    name = "opensta"

    def __init__(self, study: Study, study_dir: Path) -> None:
        d = study.spec.design
        self.study = study
        self.top = d.top
        self.tech = resolve_tech(d.tech, d.liberty, study.root)
        self.snapshot = study_dir / "snapshot"
        self.sdc = self.snapshot / f"{self.top}.sdc"

    def implements(self) -> set[str]:
        return set(CATALOG)

    # --- snapshot ------------------------------------------------------------------------
    def setup(self) -> dict[str, Any]:
        """Once per study, before the base case: the base netlist and SDC in <study>/snapshot."""
        if shutil.which("sta") is None:
            raise TrialFailure("tool_missing", "OpenSTA `sta` not found; install it: sudo apt-get install opensta")
        net = self.snapshot / f"{self.top}.v"
        d = self.study.spec.design
        if net.is_file() and self.sdc.is_file():
            return {}
        self.snapshot.mkdir(parents=True, exist_ok=True)
        if d.netlist:
            shutil.copyfile(self.study.root / d.netlist, net)
            prov: dict[str, Any] = {"netlist_from": d.netlist}
        else:
            prov = synthesise([self.study.root / r for r in d.rtl], self.top, self.tech.liberty[0], self.snapshot)
        if d.sdc:
            shutil.copyfile(self.study.root / d.sdc, self.sdc)
        else:
            self.sdc.write_text("")
        prov.update({"sta": tool_version(["sta", "-version"]), "liberty": [str(p) for p in self.tech.liberty],
                     "tech": self.tech.name})
        return prov

    # --- one trial -----------------------------------------------------------------------
    def script(self, ctx: TrialContext, eco_call: str | None = None, extra_tcl: str = "") -> str:
        """The trial's Tcl.  `eco_call`/`extra_tcl` let tests run an ECO of their own."""
        eco = CATALOG[ctx.eco]
        args = " ".join(str(ctx.params.get(p.name, p.default)) for p in eco.params)
        call = eco_call or f"n2_eco_{eco.name} {args}".rstrip()
        power = ctx.mode == "sta_power"
        parent = ctx.parent_dir / f"{self.top}.v"
        libs = "\n".join(f"read_liberty {tcl_path(p)}" for p in self.tech.liberty)
        params = " ".join(f"{k}={v}" for k, v in ctx.params.items())
        return f"""# noodle2 trial {ctx.case_id}: {eco.name} {params} ({eco.eco_class.value}), mode {ctx.mode}
# parent netlist (read-only): {parent}
puts "N2ARTIFACTS {ctx.trial_dir}"
set n2_tag {ctx.case_id}
{ECO_LIB.read_text()}
{extra_tcl}
{libs}
read_verilog {tcl_path(parent)}
link_design {self.top}
read_sdc {tcl_path(self.sdc)}
{"set_power_activity -global -activity 0.1" if power else ""}
n2_metric unconstrained_before [n2_unconstrained_endpoints]
set n2_changes [{call}]
n2_metric eco_changes $n2_changes
n2_metric unconstrained_endpoints [n2_unconstrained_endpoints]
set n2_undriven [n2_undriven_nets]
n2_metric undriven_nets [llength $n2_undriven]
if {{[llength $n2_undriven]}} {{ puts "N2UNDRIVEN [lrange $n2_undriven 0 9]" }}
n2_metric failing_endpoints [n2_failing_endpoints]
n2_report {tcl_path(ctx.trial_dir / "sta")} {WORST_PATHS} {int(power)}
write_verilog {tcl_path(ctx.trial_dir / (self.top + ".raw.v"))}
puts "N2DONE"
exit
"""

    def prepare(self, ctx: TrialContext) -> Command:
        (ctx.trial_dir / "run.tcl").write_text(self.script(ctx))
        return Command(["sta", "-no_init", "-no_splash", "run.tcl"], ctx.trial_dir, ctx.trial_dir / "stdout.log",
                       ctx.trial_dir / "stderr.log", None, ctx.memory_limit_mb)

    def collect(self, ctx: TrialContext, result: ExecResult) -> dict[str, Any]:
        t = ctx.trial_dir
        stdout = (t / "stdout.log").read_text(errors="replace")
        stderr = (t / "stderr.log").read_text(errors="replace")
        errors = [ln for ln in (stderr + stdout).splitlines() if ln.startswith("Error:")]
        if errors:  # sta reports a failing command (e.g. in the SDC) and carries on: not a result
            raise TrialFailure("tool_error", f"sta reported {len(errors)} error(s): {errors[0][:160]}",
                               "\n".join(errors[:10]))
        if "N2DONE" not in stdout:
            raise TrialFailure("missing_output", "sta stopped before the end of the trial script",
                               tail(t / "stderr.log") or stdout[-1200:])
        n2m = parse_n2m(stdout)
        try:
            m: dict[str, Any] = parse_wns_tns(_read(t / "sta.wns.rpt"))
            paths = parse_paths(_read(t / "sta.timing.rpt"))
            if ctx.mode == "sta_power":
                m.update(parse_power(_read(t / "sta.power.rpt")))
        except ParseError as e:
            raise TrialFailure("parse_failure", str(e), e.excerpt) from None
        raw = t / f"{self.top}.raw.v"
        if not raw.is_file():
            raise TrialFailure("missing_output", f"sta wrote no {raw.name}", stdout[-1200:])
        text = declare_wires(raw.read_text())
        (t / f"{self.top}.v").write_text(text)
        raw.unlink()
        usage = cell_usage(text)
        (t / "cells.json").write_bytes(orjson.dumps(usage))
        before = _usage(ctx.parent_dir, self.top)
        if n2m.get("undriven_nets", 0) > 0:
            names = next((ln for ln in stdout.splitlines() if ln.startswith("N2UNDRIVEN")), "")
            raise TrialFailure("eco_integrity", f"{int(n2m['undriven_nets'])} net(s) left without a driver", names)
        if n2m.get("unconstrained_endpoints", 0) > n2m.get("unconstrained_before", 0):
            raise TrialFailure("eco_integrity", "ECO raised unconstrained endpoints "
                               f"{int(n2m['unconstrained_before'])} -> {int(n2m['unconstrained_endpoints'])}")
        if (why := class_violation(CATALOG[ctx.eco], before, usage)) is not None:
            raise TrialFailure("eco_integrity", why)
        m.update({k: int(n2m[k]) for k in ("failing_endpoints", "eco_changes", "unconstrained_endpoints") if k in n2m})
        m["instances"] = sum(usage.values())
        try:
            m["area_um2"] = area_um2(usage, liberty_areas(self.tech.liberty[0]))
        except KeyError as e:  # sta links unknown cells as black boxes, with only a warning
            raise TrialFailure("tool_error", f"netlist uses {e.args[0]}", tail(t / "stderr.log")) from None
        m["worst_paths"] = paths
        (t / "metrics.json").write_bytes(orjson.dumps(m, option=orjson.OPT_INDENT_2))
        index = [{"path": p.name, "type": kind, "label": label} for p, kind, label in [
            (t / "run.tcl", "text/x-tcl", "script run by sta"), (t / "stdout.log", "text/plain", "sta stdout"),
            (t / "stderr.log", "text/plain", "sta stderr"), (t / f"{self.top}.v", "text/x-verilog", "child netlist"),
            (t / "sta.timing.rpt", "text/plain", f"worst {WORST_PATHS} paths"),
            (t / "sta.wns.rpt", "text/plain", "wns/tns"), (t / "sta.power.rpt", "text/plain", "power"),
            (t / "metrics.json", "application/json", "metrics")] if p.exists()]
        (t / "artifact_index.json").write_bytes(orjson.dumps(index, option=orjson.OPT_INDENT_2))
        return m


def _usage(trial_dir: Path, top: str) -> Counter[str]:
    """A trial's cell usage: its cells.json, or counted from the netlist (the snapshot)."""
    try:
        return Counter(orjson.loads((trial_dir / "cells.json").read_bytes()))
    except FileNotFoundError:
        return cell_usage((trial_dir / f"{top}.v").read_text())


def _read(p: Path) -> str:
    try:
        return p.read_text(errors="replace")
    except FileNotFoundError:
        raise ParseError(f"{p.name} was not written", "") from None
