"""Route modes of an OpenSTA trial: the trial script, then place and route with qflow and
post-route timing of the routed netlist, run by a driver (flow.py) in the trial's process
group, so a kill reaches every router.  Post-route metrics replace the pre-route ones."""
from __future__ import annotations

import os
import shutil
import sys
from functools import partial
from typing import Any

import orjson

from noodle2.engine.catalog.ecos import EcoDef
from noodle2.engine.executors.base import Command
from noodle2.engine.study.models import Physical
from noodle2.engine.tools.base import TrialContext, TrialFailure, scan_lines, tail
from noodle2.engine.tools.netlist import cell_usage
from noodle2.engine.tools.timing.collect import INTEGRITY, read_json, read_n2m, read_report
from noodle2.engine.tools.timing.design import StaDesign
from noodle2.engine.tools.timing.parsers import ParseError, parse_paths, parse_power, parse_wns_tns
from noodle2.engine.tools.timing.scripts import post_route_script, trial_script

QFLOW_TECHS = ("osu018", "osu035", "osu050")
# what a route mode re-measures after routing; the pre-route value stays as pre_<name>
PRE_ROUTE = ("wns_ps", "tns_ps", "failing_endpoints", "slew_violations", "cap_violations", "hold_violations",
             "hold_worst_ps", "power_internal_w", "power_switching_w", "power_leakage_w", "power_total_w")


def prepare_route(design: StaDesign, ctx: TrialContext, eco: EcoDef, phys: Physical) -> Command:
    if shutil.which("qflow") is None:
        raise TrialFailure("tool_missing", f"qflow not found: mode {ctx.mode} places and routes with it; "
                           "install it: sudo apt-get install qflow")
    if design.lef is None or design.tech.name not in QFLOW_TECHS:
        raise TrialFailure("tool_missing", f"mode {ctx.mode} needs a qflow technology with a LEF, not "
                           f"{design.tech.name!r}")
    t = ctx.trial_dir
    (t / "run.tcl").write_text(trial_script(design, ctx, eco))
    (t / "post.tcl").write_text(post_route_script(design, ctx))
    knobs = dict(read_json(ctx.parent_dir / "physical.json").get("knobs", {}))  # a child keeps its parent's knobs
    if eco.physical:
        knobs.update({p.name: ctx.params.get(p.name, p.default) for p in eco.params})
    rel = partial(os.path.relpath, start=t)
    (t / "pnr.json").write_bytes(orjson.dumps({
        "case_id": ctx.case_id, "top": design.top, "tech": design.tech.name, "libs": [rel(x) for x in design.libs],
        "lef": rel(design.lef), "knobs": knobs, "seed": int(knobs.get("seed") or 12345),
        "bins": phys.bins, "hot": phys.hot_threshold, "png": phys.png, "integrity": list(INTEGRITY),
        "parent_maps": rel(ctx.parent_dir / "maps") if (ctx.parent_dir / "maps").is_dir() else None}))
    return Command([sys.executable, "-m", "noodle2.engine.tools.pnr.flow", "pnr.json"], t, t / "stdout.log",
                   t / "stderr.log", None, ctx.memory_limit_mb)


def collect_route(design: StaDesign, ctx: TrialContext, m: dict[str, Any]) -> dict[str, Any]:
    """Post-route metrics replace the pre-route ones, which stay as pre_<name>; the routed
    design's physical measures join them."""
    t = ctx.trial_dir
    if (t / "pnr_failure.json").is_file():
        f = read_json(t / "pnr_failure.json")
        raise TrialFailure(str(f.get("kind", "tool_error")), str(f.get("reason", "place and route failed")),
                           str(f.get("excerpt", "")))
    post, n2m = _post_route(ctx)
    for k in PRE_ROUTE:
        if k in m:
            m[f"pre_{k}"] = m.pop(k)
    m.update(post)
    m.update({k: v for k, v in read_json(t / "physical.json").get("metrics", {}).items() if isinstance(v, (int, float))})
    m["wirecap_nets"] = int(n2m.get("wirecap_nets", 0))
    routed = cell_usage((t / "pnr" / f"{design.top}.timing.v").read_text())
    if sum(routed.values()) != m.get("instances"):
        m.setdefault("warnings", []).append(
            f"the routed netlist has {sum(routed.values())} cells, the trial's netlist {m.get('instances')}")
    if n2m.get("wirecap_missing", 0) > 0:
        m.setdefault("warnings", []).append(f"{int(n2m['wirecap_missing'])} routed nets of the SPEF are not in "
                                            "the routed netlist: their wire capacitance is missing")
    return m


def _post_route(ctx: TrialContext) -> tuple[dict[str, Any], dict[str, float]]:
    """The post-route sta run's metrics, and its raw n2_metric counts."""
    t = ctx.trial_dir
    log = scan_lines(t / "post.log", ("Error:", "Warning:", *INTEGRITY.values()))
    if log.lines["Error:"]:
        raise TrialFailure("tool_error", f"post-route sta reported {log.counts['Error:']} error(s): "
                           f"{log.lines['Error:'][0][:160]}", "\n".join(log.lines["Error:"][:10]))
    n2m = read_n2m(t / "post.n2m.txt")
    if n2m.get("done") != 1:
        raise TrialFailure("missing_output", "post-route sta stopped before the end of its script", tail(t / "post.log"))
    broken = {k: int(n2m[k]) for k in INTEGRITY if n2m.get(k, 0) > 0}
    if broken:  # qflow's round trip, not the ECO: the tool is at fault
        raise TrialFailure("tool_error", "the routed netlist has " + ", ".join(
            f"{n} {k.replace('_', ' ')}" for k, n in broken.items()), "\n".join(
            ln for p in INTEGRITY.values() for ln in log.lines[p]))
    try:
        post: dict[str, Any] = parse_wns_tns(read_report(t / "post.wns.rpt"))
        post["worst_paths"] = parse_paths(read_report(t / "post.timing.rpt"))
        if ctx.mode == "route_power":
            post.update(parse_power(read_report(t / "post.power.rpt")))
    except ParseError as e:
        raise TrialFailure("parse_failure", f"post-route: {e}", e.excerpt) from None
    post.update({k: int(n2m[k]) for k in ("failing_endpoints", "slew_violations", "cap_violations",
                                           "hold_violations") if k in n2m})
    if "hold_worst_ps" in n2m:
        post["hold_worst_ps"] = round(n2m["hold_worst_ps"], 3)
    return post, n2m
