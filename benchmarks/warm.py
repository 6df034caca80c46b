"""Warm OpenSTA workers against one `sta` per trial: the same sample study run cold and warm in
one process, on this machine.

    .venv/bin/python benchmarks/warm.py [quickstart gcd_sky130hd gcd_nangate45 ...] [--rounds N]

Per study and mode: trials per minute of trial time (trials / summed trial wall time: what one
CPU gets through), the median trial split by the trial script's own clock into load (Liberty
when cold, netlist, SDC, SPEF), ECO, timing and writing, the workers started, the median of
each trial's wall time over the sum of those phases (#20's target for warm: ≤ 1.1x), the
ratio warm/cold, and its ceiling: cold trials per minute against trials that cost only their
ECO phase (what no saving outside the ECO's own search and incremental timing can pass).  Both
modes must give the same metrics and netlists; the script says when they do not.  Rounds
alternate cold and warm, so a busy machine weighs on both.
"""
from __future__ import annotations

import filecmp
import math
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import run_study, take_option

from noodle2.engine.run.engine import Engine
from noodle2.engine.tools.timing.parsers import parse_n2m

PHASES = ("load", "eco", "timing", "write")


def run(sample: str, warm: bool, tmp: Path) -> tuple[Engine, float]:
    path = ROOT / "sample_studies" / f"{sample}.toml"
    text = path.read_text()
    line = f"warm = {'true' if warm else 'false'}"
    text = text.replace("[execution]", f"[execution]\n{line}") if "[execution]" in text else f"{text}\n[execution]\n{line}\n"
    eng, status, wall = run_study(text, path, tmp / ("warm" if warm else "cold"))
    assert status == "complete", eng.state.reason
    return eng, wall


def figures(eng: Engine) -> dict[str, float]:
    done = [t for t in eng.state.trials.values() if t.stage >= 0 and t.status == "done"]
    walls = [t.resources["wall_s"] for t in done]
    phases: dict[str, list[float]] = {p: [] for p in PHASES}
    over = []  # a trial's wall time over the timing work inside it (its script's own phases)
    for t in done:
        n2m = parse_n2m((eng.dir / "trials" / t.case_id / "n2m.txt").read_text())
        for p in PHASES:
            phases[p].append(n2m.get(f"phase_{p}_ms", 0.0) / 1000)
        inside = sum(n2m.get(f"phase_{p}_ms", 0.0) for p in PHASES) / 1000
        if inside > 0:
            over.append(t.resources["wall_s"] / inside)
    pool = getattr(eng.executor, "warm", None)
    eco = sum(phases["eco"])
    return {"trials": len(done), "per_min": 60 * len(done) / sum(walls),
            "eco_per_min": 60 * len(done) / eco if eco > 0 else float("nan"), "wall": statistics.median(walls),
            **{p: statistics.median(v) for p, v in phases.items()}, "workers": pool.started if pool else 0,
            "over": statistics.median(over) if over else float("nan")}


def differences(a: Engine, b: Engine) -> int:
    """Trials whose metrics (less timing) or netlist differ between the two runs."""
    bad = 0
    for c, t in a.state.trials.items():
        u = b.state.trials.get(c)
        if t.stage < 0 or t.status != "done":
            continue
        if u is None or u.status != "done":
            bad += 1
            continue
        top = a.spec.design.top
        same = t.metrics == u.metrics and filecmp.cmp(a.dir / "trials" / c / f"{top}.v",
                                                      b.dir / "trials" / c / f"{top}.v", shallow=False)
        if not same:
            bad += 1
            keys = sorted(k for k in set(t.metrics) | set(u.metrics) if t.metrics.get(k) != u.metrics.get(k))
            print(f"  {c} differs: {', '.join(keys) or 'netlist'}", file=sys.stderr)
    return bad


def main(samples: list[str], rounds: int) -> None:
    print(f"{'study':<15} {'mode':<5} {'trials/min':>10} {'trial':>7} " + " ".join(f"{p:>7}" for p in PHASES)
          + f" {'workers':>7} {'study':>7} {'trial/inside':>12}")
    for sample in samples:
        got: dict[bool, list[dict[str, float]]] = {False: [], True: []}
        walls: dict[bool, list[float]] = {False: [], True: []}
        diffs = 0
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(rounds):
                pair = {}
                for warm in (False, True):
                    eng, wall = run(sample, warm, Path(tmp) / str(r))
                    got[warm].append(figures(eng))
                    walls[warm].append(wall)
                    pair[warm] = eng
                diffs += differences(pair[False], pair[True])
        for warm in (False, True):
            f = {k: statistics.median(x[k] for x in got[warm]) for k in got[warm][0]}
            print(f"{sample:<15} {'warm' if warm else 'cold':<5} {f['per_min']:>10.0f} {f['wall']:>6.3f}s "
                  + " ".join(f"{f[p]:>6.3f}s" for p in PHASES)
                  + f" {int(f['workers']):>7} {statistics.median(walls[warm]):>6.1f}s {f['over']:>11.2f}x")
        ratio = statistics.median(x["per_min"] for x in got[True]) / statistics.median(x["per_min"] for x in got[False])
        # The most warm workers could give: a trial that costs only its ECO phase (its own search
        # and incremental timing, the same cold or warm).
        ceiling = statistics.median(x["eco_per_min"] for x in got[True]) / statistics.median(x["per_min"] for x in got[False])
        print(f"{sample:<15} ratio warm/cold: {ratio:.2f}x trials per minute; "
              + ("metrics and netlists identical" if diffs == 0 else f"{diffs} trial(s) DIFFER"))
        print(f"{sample:<15} ceiling: " + ("n/a (no ECO phase timed)" if math.isnan(ceiling) else f"{ceiling:.2f}x")
              + " if a warm trial cost only its ECO phase")


if __name__ == "__main__":
    args = sys.argv[1:]
    n = int(take_option(args, "--rounds", "2"))
    main(args or ["quickstart", "gcd_sky130hd", "gcd_nangate45"], n)
