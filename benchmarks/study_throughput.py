"""The large unattended study at max_parallel 1 and 2: wall time, summed tool time, and parallel
efficiency = Σ tool time / (wall × workers).  Target ≥ 0.9 on 2 idle cores.

    .venv/bin/python benchmarks/study_throughput.py [study.toml]
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import run_study

from noodle2.engine.study.load import load_study


def run(path: Path, workers: int, tmp: Path) -> dict:
    base = load_study(path)
    text = base.source.replace("[execution]", f"[execution]\nmax_parallel = {workers}", 1)
    # synthesis is cached after the first run; keep it out of the trial timing
    eng, status, wall = run_study(text, path, tmp, setup_first=True)
    trials = [x for x in eng.state.trials.values() if x.resources]
    tool = sum(x.resources["wall_s"] for x in trials)
    best = eng.state.trials[eng.state.stages[-1].survivors[0]].metrics["wns_ps"] if eng.state.stages[-1].survivors else None
    return {"workers": workers, "status": status, "trials": len(trials), "wall": wall, "tool": tool,
            "eff": tool / (wall * workers), "best": best, "base": eng.state.base().metrics["wns_ps"]}


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "sample_studies/large_unattended.toml"
    with tempfile.TemporaryDirectory(dir=ROOT, prefix=".bench-") as tmp:
        rows = [run(path, w, Path(tmp)) for w in (1, 2)]
    print(f"study {path.name}")
    print(f"{'workers':>7} {'trials':>6} {'wall s':>8} {'Σ tool s':>9} {'efficiency':>10} {'speed-up':>9}  WNS base → best (ps)")
    for r in rows:
        print(f"{r['workers']:>7} {r['trials']:>6} {r['wall']:>8.2f} {r['tool']:>9.2f} {r['eff']:>10.3f} "
              f"{rows[0]['wall'] / r['wall']:>9.2f}  {r['base']:.0f} → {r['best']:.0f}")
    print("target: efficiency ≥ 0.9 at 2 workers on 2 idle cores")


if __name__ == "__main__":
    main()
