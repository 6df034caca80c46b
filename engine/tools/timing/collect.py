"""A finished `sta` trial read back: errors, the integrity counts, timing and power reports,
the child netlist and its cells, turned into metrics; anything off is a classified failure."""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from noodle2.engine.catalog.ecos import EcoDef
from noodle2.engine.fsutil import read_capped, read_json_object
from noodle2.engine.policy.integrity import class_violation
from noodle2.engine.tools.base import LogScan, TrialContext, TrialFailure, scan_lines, tail
from noodle2.engine.tools.netlist import cell_usage, declare_wires
from noodle2.engine.tools.timing.design import StaDesign
from noodle2.engine.tools.timing.parsers import ParseError, parse_n2m, parse_paths, parse_power, parse_wns_tns
from noodle2.engine.tools.timing.scripts import WORST_PATHS

KEEP_WARNINGS = 5
# integrity counts the trial script measures, and the prefix of the line naming the first ten
INTEGRITY = {"undriven_nets": "N2UNDRIVEN", "multi_driven_nets": "N2MULTIDRIVEN", "floating_inputs": "N2FLOATING"}
COUNTS = ("failing_endpoints", "eco_changes", "unconstrained_endpoints", "slew_violations", "cap_violations",
          "hold_violations", "estimated_nets")


def collect(design: StaDesign, ctx: TrialContext, eco: EcoDef) -> dict[str, Any]:
    t = ctx.trial_dir
    logs = [scan_lines(t / name, ("Error:", "Warning:", *INTEGRITY.values()), ignore=design.expected_warning)
            for name in ("stderr.log", "stdout.log")]
    errors = [ln for s in logs for ln in s.lines["Error:"]]
    if errors:  # sta reports a failing command (e.g. in the SDC) and carries on: not a result
        raise TrialFailure("tool_error", f"sta reported {sum(s.counts['Error:'] for s in logs)} error(s): "
                           f"{errors[0][:160]}", "\n".join(errors[:10]))
    n2m = read_n2m(t / "n2m.txt")
    if n2m.get("done") != 1:
        raise TrialFailure("missing_output", "sta stopped before the end of the trial script",
                           tail(t / "stderr.log") or tail(t / "stdout.log"))
    unit = _power_of_ten(n2m.get("time_unit_ps", design.tech.time_unit_ps))
    try:
        m: dict[str, Any] = parse_wns_tns(read_report(t / "sta.wns.rpt"), unit)
        paths = parse_paths(read_report(t / "sta.timing.rpt"), unit)
        if ctx.mode == "sta_power":
            m.update(parse_power(read_report(t / "sta.power.rpt")))
    except ParseError as e:
        raise TrialFailure("parse_failure", str(e), e.excerpt) from None
    text = _child_netlist(t, design.top)
    usage = cell_usage(text)
    (t / "cells.json").write_bytes(orjson.dumps(usage))
    _check_integrity(ctx, eco, n2m, logs, usage, design.top)
    m.update({k: int(n2m[k]) for k in COUNTS if k in n2m})
    # to the digits report_wns prints (3 in the Liberty's unit), so wns_ps@slow and wns_ps agree
    m.update({k: round(round(v / unit, 3) * unit, 3) for k, v in n2m.items()
              if k in ("hold_worst_ps", "ws_ps", "slack_max_ps") or "@" in k})
    m.update(_cells(design, usage, text, t))
    m["worst_paths"] = paths
    m.update(_warnings(logs))
    return m


def read_n2m(p: Path) -> dict[str, float]:
    """The `n2_metric` lines a script wrote; {} when there are none to read."""
    try:
        return parse_n2m(read_capped(p, 64 << 10).decode(errors="replace"))
    except (OSError, ValueError):
        return {}


def read_report(p: Path) -> str:
    try:
        return p.read_text(errors="replace")
    except FileNotFoundError:
        raise ParseError(f"{p.name} was not written", "") from None


def _power_of_ten(x: float) -> float:
    """sta's unit scale is single precision (1 ns reads 999.99997 ps): the power of ten it means."""
    return 10.0 ** round(math.log10(x)) if x > 0 else 1000.0


def _child_netlist(t: Path, top: str) -> str:
    raw = t / f"{top}.raw.v"
    if not raw.is_file():
        raise TrialFailure("missing_output", f"sta wrote no {raw.name}", tail(t / "stdout.log"))
    text = raw.read_text()
    if not text.rstrip().endswith("endmodule"):
        raise TrialFailure("missing_output", f"{raw.name} is truncated (no endmodule)", text[-400:])
    text = declare_wires(text)
    (t / f"{top}.v").write_text(text)
    raw.unlink()
    return text


def _check_integrity(ctx: TrialContext, eco: EcoDef, n2m: dict[str, float], logs: list[LogScan],
                     usage: Counter[str], top: str) -> None:
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
    if (why := class_violation(eco, _usage(ctx.parent_dir, top), usage)) is not None:
        raise TrialFailure("eco_integrity", why)


def _usage(trial_dir: Path, top: str) -> Counter[str]:
    """A trial's cell usage: its cells.json, or counted from the netlist (the snapshot)."""
    try:
        return Counter(orjson.loads((trial_dir / "cells.json").read_bytes()))
    except FileNotFoundError:
        return cell_usage((trial_dir / f"{top}.v").read_text())


def _cells(design: StaDesign, usage: Counter[str], text: str, t: Path) -> dict[str, Any]:
    physical, unknown = design.physical_cells(usage, text)
    if unknown:  # sta links unknown cells as black boxes, with only a warning
        raise TrialFailure("tool_error", f"netlist uses cells not in the Liberty: {', '.join(unknown[:5])}",
                           tail(t / "stderr.log"))
    cells = design.library().cells
    logic = {c: n for c, n in usage.items() if c not in physical}
    out = {"instances": sum(logic.values()), "area_um2": round(sum(cells[c].area * n for c, n in logic.items()), 3)}
    if physical:
        out["physical_cells"] = sum(usage[c] for c in physical)
    return out


def _warnings(logs: list[LogScan]) -> dict[str, Any]:
    """sta's warnings, less the expected ones (the scan skipped those); the first few kept as they read."""
    news = [ln for s in logs for ln in s.lines["Warning:"]]
    out: dict[str, Any] = {"sta_warnings": sum(s.counts["Warning:"] for s in logs)}
    if news:
        out["warnings"] = news[:KEEP_WARNINGS]
    return out


def artifact_index(t: Path, top: str, case: str = "", stage: str = "", eco: str = "") -> list[dict[str, str]]:
    """Every file a trial left that a person may open, with its type and what it is, labelled with
    the case, stage and ECO that made it (a file found on its own still says where it is from)."""
    pnr = t / "pnr" / top
    files = [
        (t / "run.tcl", "text/x-tcl", "script run by sta"), (t / "stdout.log", "text/plain", "sta stdout"),
        (t / "stderr.log", "text/plain", "sta stderr"), (t / f"{top}.v", "text/x-verilog", "child netlist"),
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
        (pnr.with_name(f"{top}_unroute.def"), "text/plain", "placed DEF (graywolf)"),
        (pnr.with_suffix(".def"), "text/plain", "routed DEF (qrouter)"),
        (t / "pnr" / "route.log", "text/plain", "router log (failed nets per pass)"),
        (t / "pnr" / "place.log", "text/plain", "placer log"),
        (pnr.with_suffix(".sdf"), "text/plain", "routed interconnect delays (SDF)"),
        (pnr.with_suffix(".spef"), "text/plain", "routed parasitics (SPEF, qflow's)"),
        (pnr.with_suffix(".timing.v"), "text/x-verilog", "routed netlist as timed"),
        (t / "maps" / "index.json", "application/json", "heatmaps: density, RUDY, congestion per layer")]
    maps = read_json(t / "maps" / "index.json").get("maps", [])
    files += [(t / "maps" / e[k], "text/csv" if k == "csv" else "image/png",
               f"{e['name']}{' ' + e['layer'] if e.get('layer') else ''} ({e['unit']})")
              for e in maps for k in ("csv", "png") if isinstance(e.get(k), str)]
    made = {k: v for k, v in (("case", case), ("stage", stage), ("eco", eco)) if v}
    return [{"path": str(p.relative_to(t)), "type": kind, "label": label, **made}
            for p, kind, label in files if p.exists()]


def read_json(p: Path) -> dict[str, Any]:
    """A small JSON object a tool wrote; {} when it is missing, unreadable or not an object."""
    return read_json_object(p, 4 << 20)
