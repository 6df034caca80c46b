"""The OpenSTA tool adapter: one `sta` run per trial reads the parent's netlist, applies one
ECO in Tcl, checks integrity, writes the child's netlist and the reports metrics come from.

    design.py   the snapshot and the Tcl that reads it      scripts.py  the trial's Tcl
    collect.py  its outputs read back as metrics             ../pnr/adapter.py  route modes
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import orjson

from noodle2.engine.catalog.ecos import CATALOG, ROUTE_MODES, EcoDef, catalog
from noodle2.engine.executors.base import Command, ExecResult, Warm
from noodle2.engine.quote import tcl_word
from noodle2.engine.study.models import Study
from noodle2.engine.tools.base import TrialContext
from noodle2.engine.tools.pnr.adapter import collect_route, prepare_route
from noodle2.engine.tools.proof.equiv import prove
from noodle2.engine.tools.tech.liberty import Library
from noodle2.engine.tools.timing import STA_ARGV, WORKER_ARGV
from noodle2.engine.tools.timing.collect import artifact_index, collect
from noodle2.engine.tools.timing.design import StaDesign
from noodle2.engine.tools.timing.scripts import ECO_LIB, quoter, trial_script


class OpenSTATool:
    name = "opensta"
    reports_metrics = True

    def __init__(self, study: Study, study_dir: Path) -> None:
        self.study = study
        self.design = StaDesign(study, study_dir)
        self.top = self.design.top

    @property
    def libs(self) -> list[Path]:
        """The default corner's Liberty files, as the snapshot keeps them."""
        return self.design.libs

    def library(self) -> Library:
        return self.design.library()

    def eco(self, name: str) -> EcoDef:
        return catalog(self.study.spec)[name]

    def implements(self) -> set[str]:
        return set(catalog(self.study.spec))

    def setup(self) -> dict[str, Any]:
        return self.design.setup()

    def snapshot_files(self) -> list[Path]:
        return self.design.files()

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

    def script(self, ctx: TrialContext, eco_call: str | None = None, extra_tcl: str = "",
               netlist: Path | None = None) -> str:
        return trial_script(self.design, ctx, self.eco(ctx.eco), eco_call, extra_tcl, netlist)

    def prepare(self, ctx: TrialContext) -> Command:
        t = ctx.trial_dir
        if ctx.eco == "resynth_cone":
            return self._prepare_resynth(ctx)
        if ctx.mode in ROUTE_MODES:
            return prepare_route(self.design, ctx, self.eco(ctx.eco), self.study.spec.physical)
        (t / "run.tcl").write_text(self.script(ctx))
        return Command([*STA_ARGV, "run.tcl"], t, t / "stdout.log", t / "stderr.log", None,
                       ctx.memory_limit_mb, warm=self._warm(ctx))

    def _warm(self, ctx: TrialContext) -> Warm | None:
        """A warm worker runs the trial unless its Tcl is the study's own (a custom or plugin
        ECO can change what OpenSTA keeps from one design to the next: units, dont_use, power
        activity), which starts a fresh `sta`.  `set_power_activity -global` outlives a
        re-link, but every sta_power trial sets it before it reads power and no other trial
        reads power, so both modes share workers."""
        if not self.study.spec.execution.warm or self.eco(ctx.eco).tcl is not None:
            return None
        env = self.study.spec.tool.env  # a worker keeps the environment it started with: part of its key
        key = f"opensta:{self.design.dir}" + (f":{sorted(env.items())!r}" if env else "")
        return Warm(key, WORKER_ARGV)

    def _prepare_resynth(self, ctx: TrialContext) -> Command:
        """Re-synthesis is a driver (tools/synthesis/resynth.py) around two sta scripts and Yosys;
        its last step is the ordinary trial script on the netlist it chose."""
        d, t = self.design, ctx.trial_dir
        p = {x.name: ctx.params.get(x.name, x.default) for x in CATALOG["resynth_cone"].params}

        def rel(x: Path) -> str:
            return os.path.relpath(x, t)

        head = "\n".join([f"set n2_tag {tcl_word(ctx.case_id)}", d.facts(), ECO_LIB.read_text()])
        for name, netlist, body in (
                ("select.tcl", ctx.parent_dir / f"{self.top}.v",
                 f"n2_write_cone {int(p['paths'])} {int(p['depth'])} cone.txt\nreport_wns\nreport_tns\n"),
                ("time.tcl", t / "spliced.v", "n2_estimate_wires\nreport_wns\nreport_tns\n")):
            (t / name).write_text(f"{head}\n{d.read(quoter(ctx), tcl_word(rel(netlist)))}\n{body}exit\n")
        (t / "run.tcl").write_text(self.script(ctx, netlist=t / "resynth.v"))
        (t / "resynth.json").write_text(json.dumps({
            "case_id": ctx.case_id, "parent": rel(ctx.parent_dir / f"{self.top}.v"), "libs": [rel(x) for x in d.libs],
            "yosys_lib": rel(d.yosys_lib), "dont_use": list(d.tech.dont_use),
            # a snapshot from before yosys_cells.lib existed: Yosys reads the whole file, as it did
            "yosys_cells": rel(d.yosys_cells if d.yosys_cells.is_file() else d.yosys_lib),
            "delay_target_ps": p["delay_target_ps"], "timeout_s": ctx.soft_timeout_s,
            "warm": self.study.spec.execution.warm}))  # its three sta scripts share one process
        return Command([sys.executable, "-m", "noodle2.engine.tools.synthesis.resynth", "resynth.json"], t,
                       t / "stdout.log", t / "stderr.log", None, ctx.memory_limit_mb)

    def _stage_name(self, case: str) -> str:
        """`<base>_<stage>_<index>` names its stage; the base case is `base`."""
        parts = case.rsplit("_", 2)
        stages = self.study.spec.stages
        if len(parts) == 3 and parts[1].isdigit() and int(parts[1]) < len(stages) and case.startswith(
                self.study.spec.base_case + "_"):
            return stages[int(parts[1])].name
        return "base"

    def collect(self, ctx: TrialContext, result: ExecResult) -> dict[str, Any]:
        t = ctx.trial_dir
        m = collect(self.design, ctx, self.eco(ctx.eco))
        if ctx.mode in ROUTE_MODES:
            m = collect_route(self.design, ctx, m)
        (t / "metrics.json").write_bytes(orjson.dumps(m, option=orjson.OPT_INDENT_2))
        index = artifact_index(t, self.top, ctx.case_id, self._stage_name(ctx.case_id), ctx.eco)
        (t / "artifact_index.json").write_bytes(orjson.dumps(index, option=orjson.OPT_INDENT_2))
        return m

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
