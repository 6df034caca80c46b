"""Per technology: what reading its Liberty costs, where one trial's time goes, and what its sample
study achieves.

    .venv/bin/python benchmarks/techs.py [tech ...]

For each technology, in one run on this machine:
- `sta` reading every Liberty file its sample study's trials read (all corners, the VT sets a
  vt_swap study loads), against `sta` doing nothing: the load cost every cold trial pays;
- one resize_critical trial on the sample design, split by the trial script's own clock into
  load (Liberty, netlist, SDC, SPEF), ECO, timing and reports, and writing the netlist;
- the sample study run end to end: base and best WNS, trials, wall time, every survivor proven.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import run_study

from noodle2.engine.reports.status import best_case
from noodle2.engine.run.engine import Engine
from noodle2.engine.study.load import load_study
from noodle2.engine.tools.timing.parsers import parse_n2m

SAMPLES = {"osu018": "quickstart.toml", "nangate45": "gcd_nangate45.toml", "sky130hd": "gcd_sky130hd.toml",
           "asap7": "gcd_asap7.toml"}


def sta_seconds(work: Path, body: str, runs: int = 3) -> float:
    (work / "t.tcl").write_text(body + "\nexit\n")
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(["sta", "-no_init", "-no_splash", "t.tcl"], cwd=work, capture_output=True, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def liberty_cost(files: list[Path], work: Path) -> tuple[float, float, float]:
    """(seconds sta takes to read `files`, seconds it takes to start and stop, MB read)."""
    empty = sta_seconds(work, "")
    read = sta_seconds(work, "\n".join(f"read_liberty {p}" for p in files))
    return read - empty, empty, sum(p.stat().st_size for p in files) / 2**20


def one_trial(eng: Engine) -> dict[str, float]:
    s = eng.state
    done = [t for t in s.trials.values() if t.stage >= 0 and t.status == "done" and t.eco == "resize_critical"]
    phases: dict[str, list[float]] = {}
    for t in done:
        n2m = parse_n2m((eng.dir / "trials" / t.case_id / "n2m.txt").read_text())
        for k, v in n2m.items():
            if k.startswith("phase_"):
                phases.setdefault(k[6:-3], []).append(v / 1000)
    walls = [t.resources["wall_s"] for t in done]
    return {"trials": len(done), "wall": statistics.median(walls) if walls else 0.0,
            **{k: statistics.median(v) for k, v in phases.items()}}


def study(tech: str, tmp: Path) -> tuple[Engine, float]:
    st = load_study(ROOT / "sample_studies" / SAMPLES[tech])
    eng, status, wall = run_study(st, None, tmp / "studies")
    assert status == "complete", eng.state.reason
    return eng, wall


def main(techs: list[str]) -> None:
    print(f"{'tech':<10} {'liberty':>8} {'sta read':>9} {'sta start':>9}   {'trial':>6} {'load':>6} {'eco':>6} "
          f"{'timing':>6} {'write':>6}   {'study: base -> best WNS':<28} {'trials':>6} {'wall':>6} proven")
    with tempfile.TemporaryDirectory() as tmp:
        for tech in techs:
            work = Path(tmp) / tech
            work.mkdir()
            eng, wall = study(tech, work)
            read, empty, mb = liberty_cost(list(eng.tool.design.lib_copies.values()), work)  # every corner, every VT set
            t = one_trial(eng)
            s = eng.state
            best, base = best_case(s), s.base()
            proven = all(x.proof and x.proof["proven"] for st in s.stages for c in st.survivors
                         if (x := s.trials[c]).stage == st.index)
            trials = sum(1 for x in s.trials.values() if x.stage >= 0)
            print(f"{tech:<10} {mb:>5.1f} MB {read:>8.2f}s {empty:>8.2f}s   {t['wall']:>5.2f}s {t.get('load', 0):>5.2f}s "
                  f"{t.get('eco', 0):>5.2f}s {t.get('timing', 0):>5.2f}s {t.get('write', 0):>5.2f}s   "
                  f"{base.metrics['wns_ps'] / 1000:+.3f} -> {best.metrics['wns_ps'] / 1000:+.3f} ns ({best.case_id})"
                  f"{'':<2} {trials:>6} {wall:>5.1f}s {'yes' if proven else 'NO'}")


if __name__ == "__main__":
    main(sys.argv[1:] or list(SAMPLES))
