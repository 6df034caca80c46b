"""Post-route trials (modes route and route_power): one trial runs, in its own directory and
process group,

1. `sta run.tcl`: the ordinary trial script (the ECO, its integrity checks, pre-route timing);
2. the child netlist to BLIF with Yosys (internal nets renamed n2w<k>: qflow's tools break on
   escaped names), then qflow: `place` (graywolf), `route` (qrouter), `backanno` (SDF and SPEF);
3. `sta post.tcl`: the routed netlist timed with qrouter's delays (read_sdf) and each net's routed
   wire capacitance (the SPEF's net totals, set_load on the net object; OpenSTA 2.0.17 mis-reads
   qflow's SPEF itself): setup, hold, electrical checks, power;
4. density, RUDY and congestion maps from the routed DEF and the tech LEF (engine.tools.physical),
   as CSV and PNG, with diffs against the parent's maps.

A step that fails writes pnr_failure.json (kind, reason, excerpt) and the driver exits 0, so the
adapter's collect classifies it (route_failed, place_failed, tool_error) instead of a bare rc.

    python -m engine.tools.pnr pnr.json
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SAFE_PATH = re.compile(r"[A-Za-z0-9_./+-]+")  # what qflow's tcsh scripts survive unquoted
QFLOW = "qflow"


class StepFailed(Exception):
    def __init__(self, kind: str, reason: str, excerpt: str = "") -> None:
        super().__init__(reason)
        self.kind, self.reason, self.excerpt = kind, reason, excerpt


def _tail(p: Path, n: int = 1500) -> str:
    try:
        return p.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def _run(argv: list[str], cwd: Path, log: Path, what: str) -> float:
    """Run one step with its output in `log`; returns seconds.  Nonzero exit: StepFailed."""
    t0 = time.monotonic()
    with open(log, "wb") as f:
        rc = subprocess.call(argv, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
    if rc != 0:
        raise StepFailed("tool_error", f"{what} exited with rc {rc}", _tail(log))
    return time.monotonic() - t0


def spef_wire_caps(text: str) -> dict[str, float]:
    """net name -> total wire capacitance in pF, from qrouter's SPEF (its *D_NET totals are pF
    although the header says *C_UNIT 1 FF)."""
    names: dict[str, str] = {}
    out: dict[str, float] = {}
    section = re.search(r"^\*NAME_MAP\s*$(.*?)(?=^\*[A-Z_]+\b|\Z)", text, re.M | re.S)
    for m in re.finditer(r"^\*(\d+)\s+(\S+)\s*$", section.group(1) if section else "", re.M):
        names[m.group(1)] = m.group(2)
    for m in re.finditer(r"^\*D_NET\s+\*?(\S+)\s+(\S+)", text, re.M):
        key = m.group(1)
        out[names.get(key, key)] = float(m.group(2))
    return out


def wirecap_tcl(caps: dict[str, float]) -> str:
    """Tcl that sets each routed net's wire capacitance on the net object; counts what it found."""
    from noodle2.engine.quote import tcl_array

    lines = tcl_array("n2_wirecap", ((n, f"{c:.6g}") for n, c in sorted(caps.items())))
    lines.append("""set n2_wirecap_hit 0
foreach net [get_nets *] {
  set k [get_full_name $net]
  if {[info exists n2_wirecap($k)]} { set_load $n2_wirecap($k) $net; incr n2_wirecap_hit }
}
n2_metric wirecap_nets $n2_wirecap_hit
n2_metric wirecap_missing [expr {[array size n2_wirecap] - $n2_wirecap_hit}]""")
    return "\n".join(lines) + "\n"


def timing_netlist(text: str, fillers: set[str]) -> str:
    """qflow's routed netlist without its fill instances (they have no Liberty cell)."""
    return "".join(line for line in text.splitlines(keepends=True)
                   if not (line.split()[:1] and line.split()[0] in fillers))


def project_vars(p: dict[str, Any]) -> str:
    """qflow's project_vars.sh lines for the ECO's physical knobs (density 1, layers 0 and effort 0
    leave qflow's defaults)."""
    out = []
    if p.get("density") and float(p["density"]) < 1:
        out.append(f"set initial_density = {float(p['density']):g}")
    if p.get("layers"):
        out.append(f"set route_layers = {int(p['layers'])}")
    if p.get("effort"):
        out.append(f'set qrouter_options = "-e {int(p["effort"])}"')
    return "\n".join(out) + "\n"


def place_and_route(cfg: dict[str, Any], here: Path, work: Path, phys: dict[str, Any]) -> None:
    """Steps 2–4 in `work`; fills `phys` with step times, metrics and the router's passes as it
    goes, so that a failed route still leaves its maps and counts."""
    from noodle2.engine.quote import yosys_word
    from noodle2.engine.tools.netlist import declare_wires
    from noodle2.engine.tools.pnr.heatmaps import write_maps
    from noodle2.engine.tools.pnr.physical import measure, parse_def, parse_lef, router_passes

    top = cfg["top"]
    times: dict[str, float] = phys.setdefault("times", {})
    phys["metrics"] = {}
    work.mkdir(parents=True, exist_ok=True)
    (work / f"{top}.v").write_text(declare_wires((here / f"{top}.raw.v").read_text()))
    lib = here / cfg["libs"][0]
    shutil.copyfile(lib, work / "cells.lib")
    (work / "toblif.ys").write_text(
        f"read_liberty -lib cells.lib\nread_verilog {yosys_word(top + '.v')}\nhierarchy -top {yosys_word(top)}\n"
        f"splitnets\nrename -hide w:*\nrename -enumerate -pattern n2w% w:*\n"
        f"write_blif -gates -impltf {yosys_word(top + '.blif')}\n")
    times["blif_s"] = _run(["yosys", "-q", "-s", "toblif.ys"], work, work / "toblif.log", "yosys (netlist to BLIF)")
    (work / f"{top}_powerground").write_text('set vddnet="vdd"\nset gndnet="gnd"\n')
    _run([QFLOW, "-T", cfg["tech"], top], work, work / "setup.log", "qflow (project set-up)")
    par = work / f"{top}.par"
    if par.is_file():  # graywolf's seed lives in the parameter file
        par.write_text(re.sub(r"^\*random\.seed\s*:.*$", f"*random.seed\t      : {int(cfg['seed'])}",
                              par.read_text(), flags=re.M))
    with open(work / "project_vars.sh", "a") as f:
        f.write(project_vars(cfg["knobs"]))
    times["place_s"] = _run([QFLOW, "place", top], work, work / "place.log", "qflow place (graywolf)")
    if not (work / f"{top}.def").is_file():
        raise StepFailed("place_failed", "graywolf wrote no placement DEF", _tail(work / "place.log"))
    times["route_s"] = _run([QFLOW, "route", top], work, work / "route.log", "qflow route (qrouter)")
    passes, final = router_passes((work / "route.log").read_text(errors="replace"))
    lef = parse_lef((here / cfg["lef"]).read_text(errors="replace"))
    phys["passes"] = passes
    if (work / f"{top}.def").is_file():
        d = parse_def((work / f"{top}.def").read_text(errors="replace"), lef.vias)
        parent_maps = here / cfg["parent_maps"] if cfg.get("parent_maps") else None
        maps = measure(d, lef, cfg["bins"], cfg["hot"])
        index = write_maps(maps, here / "maps", design=top, case=cfg["case_id"],
                           parent_maps=parent_maps if parent_maps and parent_maps.is_dir() else None, png=cfg["png"])
        phys["maps"] = len(index["maps"])
        phys["png_skipped"] = index["png_skipped"]
        phys["metrics"].update(maps.metrics)
        for layer, st in maps.layers.items():
            phys["metrics"][f"congestion_max_{layer}"] = round(st["max"], 6)
            phys["metrics"][f"congestion_mean_{layer}"] = round(st["mean"], 6)
        phys["layers"] = maps.layers
    if final is None or final > 0:
        raise StepFailed("route_failed", f"qrouter left {final if final is not None else 'an unknown number of'} "
                         f"net(s) unrouted (failed nets after each pass: {passes[:12]})", _tail(work / "route.log"))
    times["backanno_s"] = _run([QFLOW, "backanno", top], work, work / "backanno.log", "qflow backanno (SDF, SPEF)")
    if not (work / f"{top}.sdf").is_file() or not (work / f"{top}.spef").is_file():
        raise StepFailed("missing_output", "qflow backanno wrote no SDF/SPEF", _tail(work / "backanno.log"))
    fillers = {m.name for m in lef.macros.values() if m.filler}
    (work / f"{top}.timing.v").write_text(timing_netlist((work / f"{top}.rtlnopwr.v").read_text(), fillers))
    (work / "wirecap.tcl").write_text(wirecap_tcl(spef_wire_caps((work / f"{top}.spef").read_text(errors="replace"))))
    phys["metrics"]["route_failed_nets"] = final
    phys["metrics"]["route_passes"] = len(passes)
    phys["metrics"]["route_failed_first_pass"] = passes[0] if passes else 0


def main(config: Path) -> int:
    cfg = json.loads(config.read_text())
    here = config.parent
    out = here / "pnr"

    phys: dict[str, Any] = {}

    def fail(kind: str, reason: str, excerpt: str = "") -> int:
        (here / "physical.json").write_text(json.dumps(phys, indent=1))
        (here / "pnr_failure.json").write_text(json.dumps({"kind": kind, "reason": reason, "excerpt": excerpt}))
        return 0

    sys.stdout.flush()
    rc = subprocess.call(["sta", "-no_init", "-no_splash", "run.tcl"], cwd=here)  # its output is the trial's
    if rc != 0:
        return rc
    n2m = dict(re.findall(r"^N2M (\w+) (\S+)", _read(here / "n2m.txt"), re.M))
    if n2m.get("done") != "1" or any(float(n2m.get(k, 0)) > 0 for k in cfg["integrity"]):
        return 0  # collect reports the pre-route failure; nothing worth placing
    for tool in (QFLOW, "yosys"):
        if shutil.which(tool) is None:
            return fail("tool_missing", f"{tool} not found: place and route needs it; install it: "
                        f"sudo apt-get install {tool}")
    # qflow's scripts write absolute paths unquoted: a directory with a space or `$` breaks them
    work = out if SAFE_PATH.fullmatch(str(out.resolve())) else Path(tempfile.mkdtemp(prefix="n2pnr-")) / "pnr"
    try:
        place_and_route(cfg, here, work, phys)
    except StepFailed as e:
        return fail(e.kind, e.reason, e.excerpt)
    finally:
        if work != out and work.exists():
            shutil.copytree(work, out, dirs_exist_ok=True)
            shutil.rmtree(work.parent, ignore_errors=True)
    t0 = time.monotonic()
    with open(here / "post.log", "wb") as log:
        rc = subprocess.call(["sta", "-no_init", "-no_splash", "post.tcl"], cwd=here, stdout=log,
                             stderr=subprocess.STDOUT)
    phys["times"]["post_sta_s"] = time.monotonic() - t0
    (here / "physical.json").write_text(json.dumps(phys, indent=1))
    return rc


def _read(p: Path) -> str:
    try:
        return p.read_text(errors="replace")
    except OSError:
        return ""


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
