"""OpenSTA trials: one `sta` run reads the parent's netlist, applies one ECO in Tcl, checks
integrity, writes the child's netlist and the reports that metrics are parsed from.

`sta` runs in the trial directory and every path in its script is relative to it and quoted
(`tcl_word`): the script never holds the study's absolute location.  The Liberty files are
copied into <study>/snapshot/tech, hashed with the snapshot, and checked before every trial.
"""
from __future__ import annotations

import os
import shutil
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from engine.ecos import CATALOG, ROUTE_MODES, catalog
from engine.executors import Command, ExecResult
from engine.fsutil import read_capped
from engine.policy.integrity import class_violation
from engine.spec import Study, stored_name
from engine.tools.base import TrialContext, TrialFailure, scan_lines, tail
from engine.tools.equiv import prove
from engine.tools.liberty import load as load_liberty
from engine.tools.liberty import LibertyError, tcl_facts
from engine.tools.netlist import area_um2, cell_usage, declare_wires, liberty_areas
from engine.tools.quote import safe_name, tcl_word
from engine.tools.sdc import SDC_COMMANDS
from engine.tools.sta_parsers import (
    ParseError,
    parse_n2m,
    parse_paths,
    parse_power,
    parse_wns_tns,
)
from engine.tools.tech import resolve_tech
from engine.tools.yosys import synthesise, tool_version

ECO_LIB = Path(__file__).with_name("eco_lib.tcl")
WORST_PATHS = 5
KEEP_WARNINGS = 5
# integrity counts the trial script measures, and the prefix of the line naming the first ten
INTEGRITY = {"undriven_nets": "N2UNDRIVEN", "multi_driven_nets": "N2MULTIDRIVEN", "floating_inputs": "N2FLOATING"}


class OpenSTATool:
    name = "opensta"
    reports_metrics = True

    def __init__(self, study: Study, study_dir: Path) -> None:
        d = study.spec.design
        self.study = study
        self.dir = study_dir
        self.top = d.top
        # where the Liberty comes from; trials read the snapshot's copies
        self.tech = resolve_tech(d.tech, [study.resolve(p) for p in d.liberty] if d.liberty else None)
        self.snapshot = study_dir / "snapshot"
        self.sdc = self.snapshot / f"{self.top}.sdc"
        self.netlist = self.snapshot / f"{self.top}.v"
        names: list[str] = []
        for p in self.tech.liberty:
            n = safe_name(p.name)
            names.append(n if n not in names else f"{len(names)}_{n}")
        self.libs = [self.snapshot / "tech" / n for n in names]  # what trials read
        self.raw_sdc = study.spec.study.safety_domain == "sandbox"
        self.lef = self.snapshot / "tech" / safe_name(self.tech.lef.name) if self.tech.lef is not None else None

    def implements(self) -> set[str]:
        return set(catalog(self.study.spec))

    def snapshot_files(self) -> list[Path]:
        # the LEF is read by place and route: hashed and shipped to remote workers like the rest
        return [self.netlist, self.sdc, *self.libs, *([self.lef] if self.lef is not None else [])]

    def outputs(self, ctx: TrialContext) -> list[str]:
        # a routed trial's placement tells it apart from a parent with the same netlist
        return [f"{self.top}.v", f"pnr/{self.top}.def"] if ctx.mode in ROUTE_MODES else [f"{self.top}.v"]

    def reads(self, ctx: TrialContext) -> list[Path]:
        """What a trial reads beyond the hashed inputs: a routed parent's maps, to diff against
        (shipped to a remote worker with the rest)."""
        maps = ctx.parent_dir / "maps"
        if ctx.mode not in ROUTE_MODES or not maps.is_dir():
            return []
        return sorted(p for p in maps.iterdir() if p.suffix in (".csv", ".json") and not p.name.startswith("diff_"))

    def prove(self, trial_dir: Path, parent_dir: Path) -> dict[str, Any]:
        """The trial's netlist against its parent's (structural matching, then SAT on what
        differs); a counterexample lands in <trial>/equiv/counterexample.txt.  A routed trial's
        post-route numbers come from qflow's netlist, so that one is proven against the trial's
        own netlist too (qflow renames every register: they are matched by structure)."""
        lib = load_liberty(self.libs[0])
        out = prove(parent_dir / f"{self.top}.v", trial_dir / f"{self.top}.v", self.libs, lib,
                    trial_dir / "equiv").as_dict()
        routed = trial_dir / "pnr" / f"{self.top}.timing.v"
        if not out["proven"] or not routed.is_file():
            return out
        post = prove(trial_dir / f"{self.top}.v", routed, self.libs, lib, trial_dir / "equiv" / "routed").as_dict()
        return {**post, "seconds": round(out["seconds"] + post["seconds"], 4),
                "detail": f"{out['detail']}; routed netlist: {post['detail']}"}

    def input_path(self, given: str) -> Path:
        """A design file as the study directory keeps it (inputs/), not where the user had it."""
        return self.dir / "inputs" / stored_name(given)

    # --- snapshot ------------------------------------------------------------------------
    def setup(self) -> dict[str, Any]:
        """Once per study, before the base case: netlist, SDC and Liberty in <study>/snapshot."""
        if shutil.which("sta") is None:
            raise TrialFailure("tool_missing", "OpenSTA `sta` not found; install it: sudo apt-get install opensta")
        if all(p.is_file() for p in self.snapshot_files()):
            return {}
        d = self.study.spec.design
        (self.snapshot / "tech").mkdir(parents=True, exist_ok=True)
        for src, dst in zip(self.tech.liberty, self.libs):
            shutil.copyfile(src, dst)
        for extra in (self.tech.lef, self.tech.cells_v):
            if extra is not None:
                shutil.copyfile(extra, self.snapshot / "tech" / safe_name(extra.name))
        if d.netlist:
            shutil.copyfile(self.input_path(d.netlist), self.netlist)
            prov: dict[str, Any] = {"netlist_from": d.netlist, "cells": sum(cell_usage(self.netlist.read_text()).values())}
        else:
            prov = synthesise([self.input_path(r) for r in d.rtl], self.top, self.libs[0], self.snapshot,
                              self.study.spec.execution.synth_timeout_s)
        if d.sdc:
            shutil.copyfile(self.input_path(d.sdc), self.sdc)
        else:
            self.sdc.write_text("")
        self.facts()  # a Liberty whose names cannot reach Tcl is refused here, before the base case
        prov.update({"sta": tool_version(["sta", "-version"]), "liberty": [str(p) for p in self.tech.liberty],
                     "tech": self.tech.name, "sdc_reader": "raw Tcl (sandbox)" if self.raw_sdc else "SDC commands only"})
        return prov

    # --- one trial -----------------------------------------------------------------------
    def script(self, ctx: TrialContext, eco_call: str | None = None, extra_tcl: str = "",
               netlist: Path | None = None) -> str:
        """The trial's Tcl.  `eco_call`/`extra_tcl` let tests run an ECO of their own; `netlist`
        replaces the parent's (re-synthesis measures the netlist its driver wrote)."""
        eco = catalog(self.study.spec)[ctx.eco]
        args = " ".join(tcl_word(str(ctx.params.get(p.name, p.default))) for p in eco.params)
        if eco.tcl is not None:  # a custom ECO: its body becomes a proc like the built-ins
            extra_tcl = (f"# custom ECO {eco.name} ({eco.source})\n"
                         f"proc n2_eco_{eco.name} {{{' '.join(p.name for p in eco.params)}}} {{\n{eco.tcl}\n}}\n"
                         + extra_tcl)
        call = eco_call or f"n2_eco_{eco.name} {args}".rstrip()
        power = ctx.mode.endswith("_power")

        def rel(p: Path) -> str:
            return tcl_word(os.path.relpath(p, ctx.trial_dir))

        parent = netlist or ctx.parent_dir / f"{self.top}.v"
        libs = "\n".join(f"read_liberty {rel(p)}" for p in self.libs)
        params = " ".join(f"{k}={v}" for k, v in ctx.params.items())
        sdc = self.read_sdc(rel(self.sdc))
        return f"""# noodle2 trial {ctx.case_id}: {eco.name} {params} ({eco.eco_class.value}), mode {ctx.mode}
# paths are relative to this trial's directory; the parent netlist is read-only
set n2_tag {tcl_word(ctx.case_id)}
{self.facts()}
{ECO_LIB.read_text()}
{extra_tcl}
{libs}
read_verilog {rel(parent)}
link_design {tcl_word(self.top)}
{sdc}
{"set_power_activity -global -activity 0.1" if power else ""}
n2_metric unconstrained_before [n2_unconstrained_endpoints]
set n2_changes [{call}]
n2_metric eco_changes $n2_changes
n2_metric unconstrained_endpoints [n2_unconstrained_endpoints]
n2_integrity
n2_metric failing_endpoints [n2_failing_endpoints]
n2_report sta {WORST_PATHS} {int(power)}
n2_electrical sta
n2_hold sta {WORST_PATHS}
write_verilog {tcl_word(self.top + ".raw.v")}
n2_metric done 1
exit
"""

    def read_sdc(self, word: str) -> str:
        """The Tcl that reads the SDC (a quoted path): raw in sandbox, else the SDC-only reader."""
        if self.raw_sdc:
            return f"read_sdc {word}"
        return f"n2_read_sdc_safe {word} {{{' '.join(sorted(SDC_COMMANDS))}}}"

    def facts(self) -> str:
        """The Liberty's cell facts (families, buffers, commutative pins) as Tcl, from the
        snapshot's copies."""
        try:
            return "\n".join(tcl_facts(load_liberty(p)) for p in self.libs)
        except LibertyError as e:
            raise TrialFailure("tool_error", str(e)) from None

    def prepare(self, ctx: TrialContext) -> Command:
        t = ctx.trial_dir
        if ctx.eco == "resynth_cone":
            return self._prepare_resynth(ctx)
        if ctx.mode in ROUTE_MODES:
            return self._prepare_route(ctx)
        (t / "run.tcl").write_text(self.script(ctx))
        return Command(["sta", "-no_init", "-no_splash", "run.tcl"], t, t / "stdout.log", t / "stderr.log", None,
                       ctx.memory_limit_mb)

    def _prepare_resynth(self, ctx: TrialContext) -> Command:
        """Re-synthesis is a driver (engine/tools/resynth.py) around two sta runs and Yosys; its
        last step is the ordinary trial script on the netlist it chose."""
        import json
        import os
        import sys

        t = ctx.trial_dir
        p = {x.name: ctx.params.get(x.name, x.default) for x in CATALOG["resynth_cone"].params}

        def rel(x: Path) -> str:
            return os.path.relpath(x, t)

        head = "\n".join([f"set n2_tag {tcl_word(ctx.case_id)}", self.facts(), ECO_LIB.read_text(),
                          *(f"read_liberty {tcl_word(rel(x))}" for x in self.libs)])
        sdc = self.read_sdc(tcl_word(rel(self.sdc)))
        for name, netlist, body in (
                ("select.tcl", ctx.parent_dir / f"{self.top}.v",
                 f"n2_write_cone {int(p['paths'])} {int(p['depth'])} cone.txt\nreport_wns\nreport_tns\n"),
                ("time.tcl", t / "spliced.v", "report_wns\nreport_tns\n")):
            (t / name).write_text(f"{head}\nread_verilog {tcl_word(rel(netlist))}\nlink_design {tcl_word(self.top)}\n"
                                  f"{sdc}\n{body}exit\n")
        (t / "run.tcl").write_text(self.script(ctx, netlist=t / "resynth.v"))
        (t / "resynth.json").write_text(json.dumps({
            "case_id": ctx.case_id, "parent": rel(ctx.parent_dir / f"{self.top}.v"), "libs": [rel(x) for x in self.libs],
            "delay_target_ps": p["delay_target_ps"], "timeout_s": ctx.soft_timeout_s}))
        here = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(x for x in (here, os.environ.get("PYTHONPATH", "")) if x)}
        return Command([sys.executable, "-m", "engine.tools.resynth", "resynth.json"], t, t / "stdout.log",
                       t / "stderr.log", env, ctx.memory_limit_mb)

    def collect(self, ctx: TrialContext, result: ExecResult) -> dict[str, Any]:
        t = ctx.trial_dir
        logs = [scan_lines(t / name, ("Error:", "Warning:", *INTEGRITY.values())) for name in ("stderr.log", "stdout.log")]
        errors = [ln for s in logs for ln in s.lines["Error:"]]
        if errors:  # sta reports a failing command (e.g. in the SDC) and carries on: not a result
            raise TrialFailure("tool_error", f"sta reported {sum(s.counts['Error:'] for s in logs)} error(s): "
                               f"{errors[0][:160]}", "\n".join(errors[:10]))
        try:
            n2m = parse_n2m(read_capped(t / "n2m.txt", 64 << 10).decode(errors="replace"))
        except (OSError, ValueError):
            n2m = {}
        if n2m.get("done") != 1:
            raise TrialFailure("missing_output", "sta stopped before the end of the trial script",
                               tail(t / "stderr.log") or tail(t / "stdout.log"))
        try:
            m: dict[str, Any] = parse_wns_tns(_read(t / "sta.wns.rpt"))
            paths = parse_paths(_read(t / "sta.timing.rpt"))
            if ctx.mode == "sta_power":
                m.update(parse_power(_read(t / "sta.power.rpt")))
        except ParseError as e:
            raise TrialFailure("parse_failure", str(e), e.excerpt) from None
        raw = t / f"{self.top}.raw.v"
        if not raw.is_file():
            raise TrialFailure("missing_output", f"sta wrote no {raw.name}", tail(t / "stdout.log"))
        text = raw.read_text()
        if not text.rstrip().endswith("endmodule"):
            raise TrialFailure("missing_output", f"{raw.name} is truncated (no endmodule)", text[-400:])
        text = declare_wires(text)
        (t / f"{self.top}.v").write_text(text)
        raw.unlink()
        usage = cell_usage(text)
        (t / "cells.json").write_bytes(orjson.dumps(usage))
        before = _usage(ctx.parent_dir, self.top)
        broken = [(key, prefix) for key, prefix in INTEGRITY.items() if n2m.get(key, 0) > 0]
        if broken:
            names = "\n".join(next((ln for s in logs for ln in s.lines[p]), "") for _, p in broken)
            raise TrialFailure("eco_integrity", ", ".join(f"{int(n2m[k])} {k.replace('_', ' ')}" for k, _ in broken),
                               names)
        if n2m.get("unconstrained_endpoints", 0) > n2m.get("unconstrained_before", 0):
            raise TrialFailure("eco_integrity", "ECO raised unconstrained endpoints "
                               f"{int(n2m['unconstrained_before'])} -> {int(n2m['unconstrained_endpoints'])}")
        if (why := class_violation(catalog(self.study.spec)[ctx.eco], before, usage)) is not None:
            raise TrialFailure("eco_integrity", why)
        m.update({k: int(n2m[k]) for k in ("failing_endpoints", "eco_changes", "unconstrained_endpoints", "slew_violations",
                                           "cap_violations", "hold_violations") if k in n2m})
        if "hold_worst_ps" in n2m:
            m["hold_worst_ps"] = round(n2m["hold_worst_ps"], 3)
        m["instances"] = sum(usage.values())
        try:
            m["area_um2"] = area_um2(usage, liberty_areas(self.libs[0]))
        except KeyError as e:  # sta links unknown cells as black boxes, with only a warning
            raise TrialFailure("tool_error", f"netlist uses {e.args[0]}", tail(t / "stderr.log")) from None
        m["worst_paths"] = paths
        warnings = [ln for s in logs for ln in s.lines["Warning:"]]
        m["sta_warnings"] = sum(s.counts["Warning:"] for s in logs)
        if warnings:
            m["warnings"] = warnings[:KEEP_WARNINGS]
        if ctx.mode in ROUTE_MODES:
            m = self._collect_route(ctx, m)
        (t / "metrics.json").write_bytes(orjson.dumps(m, option=orjson.OPT_INDENT_2))
        pnr = t / "pnr" / self.top
        files = [
            (t / "run.tcl", "text/x-tcl", "script run by sta"), (t / "stdout.log", "text/plain", "sta stdout"),
            (t / "stderr.log", "text/plain", "sta stderr"), (t / f"{self.top}.v", "text/x-verilog", "child netlist"),
            (t / "sta.timing.rpt", "text/plain", f"worst {WORST_PATHS} paths"),
            (t / "sta.wns.rpt", "text/plain", "wns/tns"), (t / "sta.power.rpt", "text/plain", "power"),
            (t / "sta.hold.rpt", "text/plain", f"worst {WORST_PATHS} min-delay (hold) paths"),
            (t / "sta.electrical.rpt", "text/plain", "max transition and max capacitance violations"),
            (t / "n2m.txt", "text/plain", "integrity counts"), (t / "metrics.json", "application/json", "metrics"),
            (t / "post.tcl", "text/x-tcl", "post-route timing script"), (t / "post.log", "text/plain", "post-route sta log"),
            (t / "post.timing.rpt", "text/plain", f"post-route worst {WORST_PATHS} paths"),
            (t / "post.wns.rpt", "text/plain", "post-route wns/tns"), (t / "post.power.rpt", "text/plain", "post-route power"),
            (t / "post.hold.rpt", "text/plain", "post-route hold paths"),
            (t / "post.electrical.rpt", "text/plain", "post-route max transition and capacitance violations"),
            (t / "physical.json", "application/json", "place and route: step times, router passes, layers"),
            (pnr.with_name(f"{self.top}_unroute.def"), "text/plain", "placed DEF (graywolf)"),
            (pnr.with_suffix(".def"), "text/plain", "routed DEF (qrouter)"),
            (t / "pnr" / "route.log", "text/plain", "router log (failed nets per pass)"),
            (t / "pnr" / "place.log", "text/plain", "placer log"),
            (pnr.with_suffix(".sdf"), "text/plain", "routed interconnect delays (SDF)"),
            (pnr.with_suffix(".spef"), "text/plain", "routed parasitics (SPEF, qflow's)"),
            (pnr.with_suffix(".timing.v"), "text/x-verilog", "routed netlist as timed"),
            (t / "maps" / "index.json", "application/json", "heatmaps: density, RUDY, congestion per layer")]
        maps = _json(t / "maps" / "index.json").get("maps", [])
        files += [(t / "maps" / e[k], "text/csv" if k == "csv" else "image/png",
                   f"{e['name']}{' ' + e['layer'] if e.get('layer') else ''} ({e['unit']})")
                  for e in maps for k in ("csv", "png") if isinstance(e.get(k), str)]
        index = [{"path": str(p.relative_to(t)), "type": kind, "label": label} for p, kind, label in files if p.exists()]
        (t / "artifact_index.json").write_bytes(orjson.dumps(index, option=orjson.OPT_INDENT_2))
        return m


    # --- place and route ------------------------------------------------------------------
    def _prepare_route(self, ctx: TrialContext) -> Command:
        """The trial script, then place and route and post-route timing, run by a driver
        (engine/tools/pnr.py) in the trial's process group: a kill reaches every router."""
        import sys

        if shutil.which("qflow") is None:
            raise TrialFailure("tool_missing", f"qflow not found: mode {ctx.mode} places and routes with it; "
                               "install it: sudo apt-get install qflow")
        if self.lef is None or self.tech.name not in ("osu018", "osu035", "osu050"):
            raise TrialFailure("tool_missing", f"mode {ctx.mode} needs a qflow technology with a LEF, not "
                               f"{self.tech.name!r}")
        t = ctx.trial_dir
        (t / "run.tcl").write_text(self.script(ctx))
        (t / "post.tcl").write_text(self.post_script(ctx))
        parent_phys = _json(ctx.parent_dir / "physical.json")
        knobs = dict(parent_phys.get("knobs", {}))  # a child keeps its parent's placement knobs
        eco = catalog(self.study.spec)[ctx.eco]
        if eco.physical:
            knobs.update({p.name: ctx.params.get(p.name, p.default) for p in eco.params})
        p = self.study.spec.physical
        rel = partial(os.path.relpath, start=t)
        (t / "pnr.json").write_bytes(orjson.dumps({
            "case_id": ctx.case_id, "top": self.top, "tech": self.tech.name, "libs": [rel(x) for x in self.libs],
            "lef": rel(self.lef), "knobs": knobs, "seed": int(knobs.get("seed") or 12345),
            "bins": p.bins, "hot": p.hot_threshold, "png": p.png, "integrity": list(INTEGRITY),
            "parent_maps": rel(ctx.parent_dir / "maps") if (ctx.parent_dir / "maps").is_dir() else None}))
        here = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(x for x in (here, os.environ.get("PYTHONPATH", "")) if x)}
        return Command([sys.executable, "-m", "engine.tools.pnr", "pnr.json"], t, t / "stdout.log", t / "stderr.log",
                       env, ctx.memory_limit_mb)

    def post_script(self, ctx: TrialContext) -> str:
        """Timing of the routed netlist: qrouter's interconnect delays (SDF) and routed wire
        capacitance (wirecap.tcl, from the SPEF's net totals) on qflow's own netlist."""
        def rel(p: Path) -> str:
            return tcl_word(os.path.relpath(p, ctx.trial_dir))

        libs = "\n".join(f"read_liberty {rel(p)}" for p in self.libs)
        sdc = self.read_sdc(rel(self.sdc))
        pnr = f"pnr/{self.top}"
        return f"""# noodle2 post-route timing of {ctx.case_id} (mode {ctx.mode}): qflow's routed netlist
set n2_mfile [open post.n2m.txt w]
{self.facts()}
{ECO_LIB.read_text()}
{libs}
read_verilog {tcl_word(pnr + ".timing.v")}
link_design {tcl_word(self.top)}
{sdc}
read_sdf {tcl_word(pnr + ".sdf")}
source {tcl_word("pnr/wirecap.tcl")}
{"set_power_activity -global -activity 0.1" if ctx.mode.endswith("_power") else ""}
n2_integrity
n2_metric failing_endpoints [n2_failing_endpoints]
n2_report post {WORST_PATHS} {int(ctx.mode.endswith("_power"))}
n2_electrical post
n2_hold post {WORST_PATHS}
n2_metric done 1
exit
"""

    def _collect_route(self, ctx: TrialContext, m: dict[str, Any]) -> dict[str, Any]:
        """Post-route metrics replace the pre-route ones, which stay as pre_<name>; the routed
        design's physical measures join them."""
        t = ctx.trial_dir
        phys = _json(t / "physical.json")
        if (t / "pnr_failure.json").is_file():
            f = _json(t / "pnr_failure.json")
            raise TrialFailure(str(f.get("kind", "tool_error")), str(f.get("reason", "place and route failed")),
                               str(f.get("excerpt", "")))
        log = scan_lines(t / "post.log", ("Error:", "Warning:", *INTEGRITY.values()))
        if log.lines["Error:"]:
            raise TrialFailure("tool_error", f"post-route sta reported {log.counts['Error:']} error(s): "
                               f"{log.lines['Error:'][0][:160]}", "\n".join(log.lines["Error:"][:10]))
        try:
            n2m = parse_n2m(read_capped(t / "post.n2m.txt", 64 << 10).decode(errors="replace"))
        except (OSError, ValueError):
            n2m = {}
        if n2m.get("done") != 1:
            raise TrialFailure("missing_output", "post-route sta stopped before the end of its script", tail(t / "post.log"))
        broken = {k: int(n2m[k]) for k in INTEGRITY if n2m.get(k, 0) > 0}
        if broken:  # qflow's round trip, not the ECO: the tool is at fault
            raise TrialFailure("tool_error", "the routed netlist has " + ", ".join(
                f"{n} {k.replace('_', ' ')}" for k, n in broken.items()), "\n".join(
                ln for p in INTEGRITY.values() for ln in log.lines[p]))
        try:
            post: dict[str, Any] = parse_wns_tns(_read(t / "post.wns.rpt"))
            post["worst_paths"] = parse_paths(_read(t / "post.timing.rpt"))
            if ctx.mode == "route_power":
                post.update(parse_power(_read(t / "post.power.rpt")))
        except ParseError as e:
            raise TrialFailure("parse_failure", f"post-route: {e}", e.excerpt) from None
        post.update({k: int(n2m[k]) for k in ("failing_endpoints", "slew_violations", "cap_violations",
                                               "hold_violations") if k in n2m})
        if "hold_worst_ps" in n2m:
            post["hold_worst_ps"] = round(n2m["hold_worst_ps"], 3)
        for k in PRE_ROUTE:
            if k in m:
                m[f"pre_{k}"] = m.pop(k)
        m.update(post)
        m.update({k: v for k, v in phys.get("metrics", {}).items() if isinstance(v, (int, float))})
        m["wirecap_nets"] = int(n2m.get("wirecap_nets", 0))
        routed = cell_usage((t / "pnr" / f"{self.top}.timing.v").read_text())
        if sum(routed.values()) != m.get("instances"):
            m.setdefault("warnings", []).append(
                f"the routed netlist has {sum(routed.values())} cells, the trial's netlist {m.get('instances')}")
        if n2m.get("wirecap_missing", 0) > 0:
            m.setdefault("warnings", []).append(f"{int(n2m['wirecap_missing'])} routed nets of the SPEF are not in "
                                                "the routed netlist: their wire capacitance is missing")
        return m


# what a route mode re-measures after routing; the pre-route value stays as pre_<name>
PRE_ROUTE = ("wns_ps", "tns_ps", "failing_endpoints", "slew_violations", "cap_violations", "hold_violations",
             "hold_worst_ps", "power_internal_w", "power_switching_w", "power_leakage_w", "power_total_w")


def _json(p: Path) -> dict[str, Any]:
    try:
        v = orjson.loads(read_capped(p, 4 << 20))
    except (OSError, ValueError):
        return {}
    return v if isinstance(v, dict) else {}


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
