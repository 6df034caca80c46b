"""OpenSTA trials: one `sta` run reads the parent's netlist, applies one ECO in Tcl, checks
integrity, writes the child's netlist and the reports that metrics are parsed from.

`sta` runs in the trial directory and every path in its script is relative to it and quoted
(`tcl_word`): the script never holds the study's absolute location.  The Liberty files are
copied into <study>/snapshot/tech, hashed with the snapshot, and checked before every trial.
"""
from __future__ import annotations

import os
import re
import shutil
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from engine.ecos import CATALOG, ROUTE_MODES, catalog
from engine.executors import Command, ExecResult
from engine.errors import N2Error
from engine.fsutil import link_or_copy, read_capped
from engine.policy.integrity import class_violation
from engine.spec import Study, stored_name
from engine.tools.base import TrialContext, TrialFailure, scan_lines, tail
from engine.tools.equiv import prove
from engine.tools.liberty import LibertyError, merged_text, tcl_facts
from engine.tools.liberty import load_set as load_liberty_set
from engine.tools.netlist import cell_usage, declare_wires, pinless_cells
from engine.tools.quote import safe_name, tcl_word
from engine.tools.sdc import SDC_COMMANDS
from engine.tools.spef import wire_estimates
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
        self.tech = resolve_tech(d.tech, [study.resolve(p) for p in d.liberty] if d.liberty else None,
                                 dont_use=tuple(d.dont_use), vt=any("vt_swap" in st.ecos for st in study.spec.stages))
        self.snapshot = study_dir / "snapshot"
        self.sdc = self.snapshot / f"{self.top}.sdc"
        self.netlist = self.snapshot / f"{self.top}.v"
        self.corner_sources = self._corners()  # corner name -> its Liberty files (empty: one corner)
        copies: dict[Path, Path] = {}
        for p in [*self.tech.liberty, *(f for fs in self.corner_sources.values() for f in fs)]:
            if p not in copies:
                n = safe_name(p.name)
                copies[p] = self.snapshot / "tech" / (n if all(c.name != n for c in copies.values()) else f"{len(copies)}_{n}")
        self.lib_copies = copies
        self.libs = [copies[p] for p in self.tech.liberty]  # the default corner: facts, area, proofs
        self.corner_libs = {c: [copies[p] for p in fs] for c, fs in self.corner_sources.items()}
        self.raw_sdc = study.spec.study.safety_domain == "sandbox"
        self.lef = self.snapshot / "tech" / safe_name(self.tech.lef.name) if self.tech.lef is not None else None
        self.spef = self.snapshot / f"{self.top}.spef" if d.parasitics else None
        # what Yosys maps onto (synthesis, cone re-synthesis): the default threshold voltage only, one
        # file, or its files merged without do-not-use cells
        self.synth_libs = [copies[p] for p in self.tech.liberty if p in self.tech.corners[self.tech.default_corner]]
        merged = len(self.synth_libs) > 1 or bool(self.tech.dont_use)
        self.yosys_lib = self.snapshot / "tech" / "yosys.lib" if merged else self.synth_libs[0]
        self.wires = self.snapshot / "parasitics.tcl"  # estimates for nets an ECO makes

    def _corners(self) -> dict[str, list[Path]]:
        d = self.study.spec.design
        out: dict[str, list[Path]] = {}
        for c in d.corners:
            if c.liberty:
                out[c.name] = [self.study.resolve(p) for p in c.liberty]
            else:
                name = c.corner or c.name
                if name not in self.tech.corners:
                    raise N2Error.one("N2-E123", f"corner {c.name}: technology {self.tech.name} has no corner {name!r}",
                                      "design.corners", hint=f"use one of {', '.join(self.tech.corners)}")
                extra = [p for p in self.tech.liberty if p not in self.tech.corners[self.tech.default_corner]]
                out[c.name] = list(self.tech.corners[name]) + (extra if name == self.tech.default_corner else [])
        return out

    def library(self):
        """Every cell the trials can use, one library over all the default corner's files."""
        return load_liberty_set(self.libs, self.tech.dont_use)

    def implements(self) -> set[str]:
        return set(catalog(self.study.spec))

    def snapshot_files(self) -> list[Path]:
        # the LEF is read by place and route: hashed and shipped to remote workers like the rest
        return [self.netlist, self.sdc, *self.lib_copies.values(), *([self.lef] if self.lef is not None else []),
                *([self.yosys_lib] if self.yosys_lib not in self.libs else []),
                *([self.spef, self.wires] if self.spef is not None else [])]

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
        lib = self.library()
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
        for src, dst in self.lib_copies.items():
            link_or_copy(src, dst)
        for extra in (self.tech.lef, self.tech.cells_v):
            if extra is not None:
                shutil.copyfile(extra, self.snapshot / "tech" / safe_name(extra.name))
        if self.yosys_lib not in self.libs:
            self.yosys_lib.write_text(merged_text(self.synth_libs, lambda c: c not in self.library().dont_use))
        if d.netlist:
            shutil.copyfile(self.input_path(d.netlist), self.netlist)
            prov: dict[str, Any] = {"netlist_from": d.netlist, "cells": sum(cell_usage(self.netlist.read_text()).values())}
        else:
            incs = [stored_name(x) for x in d.include_dirs]
            prov = synthesise([self.input_path(r) for r in d.rtl], self.top, self.yosys_lib, self.snapshot,
                              self.study.spec.execution.synth_timeout_s, rels=[stored_name(r) for r in d.rtl],
                              include_dirs=[self.dir / "inputs" / r for r in incs], include_rels=incs,
                              defines=dict(d.defines))
        if d.sdc:
            shutil.copyfile(self.input_path(d.sdc), self.sdc)
        else:
            self.sdc.write_text("")
        if self.spef is not None:
            shutil.copyfile(self.input_path(d.parasitics), self.spef)
            self.wires.write_text(wire_estimates(self.spef, self.library().cap_unit_f))
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
        params = " ".join(f"{k}={v}" for k, v in ctx.params.items())
        return f"""# noodle2 trial {ctx.case_id}: {eco.name} {params} ({eco.eco_class.value}), mode {ctx.mode}
# paths are relative to this trial's directory; the parent netlist is read-only
set n2_tag {tcl_word(ctx.case_id)}
set n2_t0 [clock milliseconds]
{self.facts()}
{ECO_LIB.read_text()}
{extra_tcl}
{self.read_design(rel, rel(parent))}
{"set_power_activity -global -activity 0.1" if power else ""}
n2_metric time_unit_ps [n2_unit_ps]
n2_metric unconstrained_before [n2_unconstrained_endpoints]
n2_phase load
set n2_changes [{call}]
n2_phase eco
{self._measure_as_written(rel, power)}
n2_metric eco_changes $n2_changes
n2_metric unconstrained_endpoints [n2_unconstrained_endpoints]
n2_integrity
n2_metric failing_endpoints [n2_failing_endpoints]
n2_report sta {WORST_PATHS} {int(power)}
n2_corner_metrics
n2_electrical sta
n2_hold sta {WORST_PATHS}
n2_phase timing
{"" if self.spef is not None else f"write_verilog {tcl_word(self.top + '.raw.v')}"}
n2_phase write
n2_metric done 1
exit
"""

    def _measure_as_written(self, rel, power: bool) -> str:
        """With a SPEF, the child is timed as its own children will read it: written, then read
        and linked again in this process (the Liberty stays loaded), its SPEF and estimates
        applied afresh.  An edit made after read_spef leaves a moved pin's node where it was,
        which no later read reproduces.  Without a SPEF the design in memory is the written one."""
        if self.spef is None:
            return "n2_estimate_wires"
        raw = tcl_word(self.top + ".raw.v")
        return "\n".join([f"write_verilog {raw}", self.read_design(rel, raw, with_liberty=False),
                           "set_power_activity -global -activity 0.1" if power else ""])

    def read_design(self, rel, netlist: str, with_liberty: bool = True) -> str:
        """Liberty (per corner, when the study has several), the netlist, the SDC and the SPEF,
        as Tcl; `rel` quotes a path relative to where sta runs, `netlist` is already quoted."""
        head: list[str] = []
        if with_liberty and self.corner_libs:
            names = list(self.corner_libs)
            head = [f"define_corners {' '.join(names)}", f"set n2_corners {{{' '.join(names)}}}"]
            head += [f"read_liberty -corner {c} {rel(p)}" for c, fs in self.corner_libs.items() for p in fs]
        elif with_liberty:
            head = [f"read_liberty {rel(p)}" for p in self.libs]
        out = [*head, f"read_verilog {netlist}", f"link_design {tcl_word(self.top)}", self.read_sdc(rel(self.sdc))]
        if self.spef is not None:  # a parent's new nets get their estimates before anything is timed
            out += [f"read_spef {rel(self.spef)}", f"source {rel(self.wires)}", "n2_estimate_wires"]
        return "\n".join(out)

    def read_sdc(self, word: str) -> str:
        """The Tcl that reads the SDC (a quoted path): raw in sandbox, else the SDC-only reader."""
        if self.raw_sdc:
            return f"n2_read_sdc_raw {word}"
        return f"n2_read_sdc_safe {word} {{{' '.join(sorted(SDC_COMMANDS))}}}"

    def facts(self) -> str:
        """The Liberty's cell facts (families, buffers, commutative pins, threshold voltages) as
        Tcl, from the snapshot's copies read as one library."""
        try:
            return tcl_facts(self.library())
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

        head = "\n".join([f"set n2_tag {tcl_word(ctx.case_id)}", self.facts(), ECO_LIB.read_text()])
        for name, netlist, body in (
                ("select.tcl", ctx.parent_dir / f"{self.top}.v",
                 f"n2_write_cone {int(p['paths'])} {int(p['depth'])} cone.txt\nreport_wns\nreport_tns\n"),
                ("time.tcl", t / "spliced.v", "n2_estimate_wires\nreport_wns\nreport_tns\n")):
            (t / name).write_text(f"{head}\n{self.read_design(lambda x: tcl_word(rel(x)), tcl_word(rel(netlist)))}\n"
                                  f"{body}exit\n")
        (t / "run.tcl").write_text(self.script(ctx, netlist=t / "resynth.v"))
        (t / "resynth.json").write_text(json.dumps({
            "case_id": ctx.case_id, "parent": rel(ctx.parent_dir / f"{self.top}.v"), "libs": [rel(x) for x in self.libs],
            "yosys_lib": rel(self.yosys_lib), "dont_use": list(self.tech.dont_use),
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
        unit = _power_of_ten(n2m.get("time_unit_ps", self.tech.time_unit_ps))
        try:
            m: dict[str, Any] = parse_wns_tns(_read(t / "sta.wns.rpt"), unit)
            paths = parse_paths(_read(t / "sta.timing.rpt"), unit)
            if ctx.mode == "sta_power":
                m.update(parse_power(_read(t / "sta.power.rpt")))
        except ParseError as e:
            raise TrialFailure("parse_failure", str(e), e.excerpt) from None
        text = self._child_netlist(t)
        usage = cell_usage(text)
        (t / "cells.json").write_bytes(orjson.dumps(usage))
        self._check_integrity(ctx, n2m, logs, usage)
        m.update({k: int(n2m[k]) for k in ("failing_endpoints", "eco_changes", "unconstrained_endpoints", "slew_violations",
                                           "cap_violations", "hold_violations", "estimated_nets") if k in n2m})
        # to the digits report_wns prints (3 in the Liberty's unit), so wns_ps@slow and wns_ps agree
        m.update({k: round(round(v / unit, 3) * unit, 3) for k, v in n2m.items()
                  if k in ("hold_worst_ps", "ws_ps") or "@" in k})
        m.update(self._cells(usage, text, t))
        m["worst_paths"] = paths
        expected = sum(1 for s in logs for ln in s.lines["Warning:"] if self._expected_warning(ln))
        warnings = [ln for s in logs for ln in s.lines["Warning:"] if not self._expected_warning(ln)]
        m["sta_warnings"] = sum(s.counts["Warning:"] for s in logs) - expected
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

    def _child_netlist(self, t: Path) -> str:
        raw = t / f"{self.top}.raw.v"
        if not raw.is_file():
            raise TrialFailure("missing_output", f"sta wrote no {raw.name}", tail(t / "stdout.log"))
        text = raw.read_text()
        if not text.rstrip().endswith("endmodule"):
            raise TrialFailure("missing_output", f"{raw.name} is truncated (no endmodule)", text[-400:])
        text = declare_wires(text)
        (t / f"{self.top}.v").write_text(text)
        raw.unlink()
        return text

    def _check_integrity(self, ctx: TrialContext, n2m: dict[str, float], logs: list, usage: Counter[str]) -> None:
        """No undriven, multi-driven or floating pins, no new unconstrained endpoints, and a change
        that fits the ECO's class; otherwise the trial is an eco_integrity failure."""
        broken = [(key, prefix) for key, prefix in INTEGRITY.items() if n2m.get(key, 0) > 0]
        if broken:
            names = "\n".join(next((ln for s in logs for ln in s.lines[p]), "") for _, p in broken)
            raise TrialFailure("eco_integrity", ", ".join(f"{int(n2m[k])} {k.replace('_', ' ')}" for k, _ in broken),
                               names)
        if n2m.get("unconstrained_endpoints", 0) > n2m.get("unconstrained_before", 0):
            raise TrialFailure("eco_integrity", "ECO raised unconstrained endpoints "
                               f"{int(n2m['unconstrained_before'])} -> {int(n2m['unconstrained_endpoints'])}")
        if (why := class_violation(catalog(self.study.spec)[ctx.eco], _usage(ctx.parent_dir, self.top), usage)) is not None:
            raise TrialFailure("eco_integrity", why)

    def physical_cells(self, usage: Counter[str], text: str) -> tuple[set[str], list[str]]:
        """(physical-only cells, cells neither the Liberty nor the technology knows): a cell is
        physical-only when the Liberty gives it no signal pin, or when it is not in the Liberty
        and the technology names it tap, fill, decap, diode or endcap, or no instance of it
        connects anything (tap cells in a routed netlist)."""
        cells = self.library().cells
        pinless = pinless_cells(text)
        physical, unknown = set(), []
        for c in usage:
            known = cells.get(c)
            if known is not None:
                if not known.inputs and not known.outputs:
                    physical.add(c)
            elif self.tech.physical_kind(c) or c in pinless:
                physical.add(c)
            else:
                unknown.append(c)
        return physical, sorted(unknown)

    def _cells(self, usage: Counter[str], text: str, t: Path) -> dict[str, Any]:
        physical, unknown = self.physical_cells(usage, text)
        if unknown:  # sta links unknown cells as black boxes, with only a warning
            raise TrialFailure("tool_error", f"netlist uses cells not in the Liberty: {', '.join(unknown[:5])}",
                               tail(t / "stderr.log"))
        cells = self.library().cells
        logic = {c: n for c, n in usage.items() if c not in physical}
        out = {"instances": sum(logic.values()), "area_um2": round(sum(cells[c].area * n for c, n in logic.items()), 3)}
        if physical:
            out["physical_cells"] = sum(usage[c] for c in physical)
        return out

    def _expected_warning(self, line: str) -> bool:
        """Warnings that are expected, not news: sta's black box for a physical-only cell (once
        per cell), and a SPEF pin an ECO has since moved to another net (its net keeps the rest
        of its extracted wiring, as a fresh read of the child netlist does too)."""
        if self.spef is not None and re.search(r"\.spef, line \d+ \S+ not connected to net", line):
            return True
        m = re.search(r"module (\S+) not found\.\s+Creating black box", line)
        return m is not None and m.group(1) not in self.library().cells

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


def _power_of_ten(x: float) -> float:
    """sta's unit scale is single precision (1 ns reads 999.99997 ps): the power of ten it means."""
    import math

    return 10.0 ** round(math.log10(x)) if x > 0 else 1000.0


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
