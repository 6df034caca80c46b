"""Post-route trials on mac16 (about 1,760 cells): time per trial and its split into place,
route, back-annotation and timing, against the raw qflow floor, and parallel efficiency.

    .venv/bin/python benchmarks/postroute.py [TRIALS]

Prints a table.  The floor is qflow run by hand on the same netlist (place, route, backanno);
a noodle2 route trial adds the pre-route sta run, the BLIF, post-route sta, the maps (CSV and
PNG) and journaling.  Parallel efficiency: the same TRIALS trials at max_parallel 1 and 2,
t1 / (2 x t2); 1.0 is perfect on 2 cores.  qrouter's and graywolf's times swing by 10-20 % from
run to run on a shared VM: read the ratios, not the last digit.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import run_study

ROOT = Path(__file__).resolve().parents[1]
STUDY = """
[study]
name = "postroute-bench"
safety_domain = "sandbox"
[design]
top = "mac16"
tech = "osu018"
rtl = ["{root}/sample_studies/designs/mac16/mac16.v"]
sdc = "{root}/sample_studies/designs/mac16/mac16.sdc"
[execution]
max_parallel = {par}
soft_timeout_s = 600
[physical]
png = {png}
[[stages]]
name = "route"
mode = "route"
trials = {n}
survivors = 1
ecos = ["noop"]
"""


def study_run(n: int, par: int, tmp: Path, png: bool = True) -> tuple[float, Path]:
    """The route stage's wall time, from the journal (the base case, routed too, is not in it)."""
    text = STUDY.format(root=ROOT, par=par, n=n, png=str(png).lower())
    eng, status, _ = run_study(text, tmp / f"s{n}{par}.toml", tmp / "studies")
    d = eng.dir
    assert status == "complete", (status, eng.state.reason)
    events = [orjson.loads(x) for x in (d / "journal.jsonl").read_bytes().splitlines()]
    start = next(e["t"] for e in events if e["type"] == "stage_started")
    end = next(e["t"] for e in events if e["type"] == "stage_finished")
    return end - start, d


def qflow_floor(trial: Path, tmp: Path) -> float:
    """place + route + backanno by hand, in a fresh copy of the trial's qflow inputs."""
    work = tmp / "floor"
    work.mkdir()
    for name in ("mac16.v", "mac16.blif", "mac16_powerground"):
        shutil.copy(trial / "pnr" / name, work / name)
    subprocess.run(["qflow", "-T", "osu018", "mac16"], cwd=work, capture_output=True, check=True)
    t = time.perf_counter()
    for step in ("place", "route", "backanno"):
        subprocess.run(["qflow", step, "mac16"], cwd=work, capture_output=True, check=True)
    return time.perf_counter() - t


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        one, d1 = study_run(1, 1, tmp)
        trial = d1 / "trials" / "mac16_0_0"
        phys = orjson.loads((trial / "physical.json").read_bytes())
        m = orjson.loads((trial / "metrics.json").read_bytes())
        floor = qflow_floor(trial, tmp)
        seq, _ = study_run(n, 1, tmp)
        par, _ = study_run(n, 2, tmp)
    times = phys["times"]
    trial_s = one
    print(f"post-route trial on mac16 ({m['instances']} cells, {m['wirelength_um'] / 1000:.1f} mm of wire, "
          f"{m['vias']} vias)")
    print(f"{'step':<34}{'seconds':>10}{'ratio':>10}")
    print(f"{'raw qflow place+route+backanno':<34}{floor:>10.2f}{1.0:>10.2f}   (the floor)")
    for k in ("blif_s", "place_s", "route_s", "backanno_s", "post_sta_s"):
        print(f"{'  ' + k[:-2]:<34}{times.get(k, 0):>10.2f}{times.get(k, 0) / floor:>10.2f}")
    print(f"{'a route stage of 1 trial':<34}{trial_s:>10.2f}{trial_s / floor:>10.2f}   (+ sta, maps, PNGs, proof, journal)")
    eff = seq / (2 * par)
    print(f"{f'{n} route trials, max_parallel 1':<34}{seq:>10.2f}{seq / floor:>10.2f}")
    print(f"{f'{n} route trials, max_parallel 2':<34}{par:>10.2f}{par / floor:>10.2f}")
    print(f"parallel efficiency at 2 workers: {eff:.2f}  ({seq:.1f} s / (2 x {par:.1f} s))")
    print(f"post-route WNS {m['wns_ps'] / 1000:+.3f} ns against {m['pre_wns_ps'] / 1000:+.3f} ns before routing")


if __name__ == "__main__":
    main()
