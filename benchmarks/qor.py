"""Quality of results: how much of each design's timing violation noodle2 closes in 100 trials.

    .venv/bin/python benchmarks/qor.py [design ...] [--template FILE] [--early]

For each sample design: the shipped study (its stages are the one generic template, unchanged
from design to design) at 100 trials, against a greedy chain of 100 single-ECO steps (a random
upsize or buffer on the current netlist, kept when WNS improves), run on the same machine in
the same process.  Prints the fraction of the base WNS violation each closes, the TNS, and
whether noodle2's winner is proven equivalent to the base netlist, the trials that changed
nothing (a netlist identical to its parent's) and, with --early, the same study again without
its [study] goal (wns_ps = 0, shipped in every sample study): the trials early stopping saved and
whether the result held.
"""
from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import harness

from noodle2.engine.reports.status import best_case
from noodle2.engine.tools.proof.equiv import prove

DESIGNS = {"mac16": "mac16.toml", "alu32": "alu32.toml", "crc64": "crc64.toml", "sort8": "sort8.toml"}


def study_text(design: str, template: Path | None, early: bool = False) -> str:
    text = (ROOT / "sample_studies" / DESIGNS[design]).read_text()
    if not early:  # the whole budget, for comparison: without the goal the study never stops early
        text = "\n".join(ln for ln in text.splitlines() if not ln.startswith("goal = ")) + "\n"
    if template is not None:  # try another template's stages on this design
        head = text[:text.index("[[stages]]")]
        text = head + template.read_text()[template.read_text().index("[[stages]]"):]
    return text


def run_study(design: str, template: Path | None, tmp: Path, early: bool = True) -> dict:
    text = study_text(design, template, early)
    eng, status, wall = harness.run_study(text, ROOT / "sample_studies" / DESIGNS[design], tmp / "studies")
    assert status == "complete", eng.state.reason
    s, d, study = eng.state, eng.dir, eng.study
    best, base = best_case(s), s.base()
    trials = sum(1 for x in s.trials.values() if x.stage >= 0)
    proven_chain = _chain_proven(s, best.case_id)
    proof = prove(d / "snapshot" / f"{study.spec.design.top}.v", d / "trials" / best.case_id / f"{study.spec.design.top}.v",
                  eng.tool.libs, eng.tool.library(), tmp / "final-proof")
    proof_s = [x.proof["seconds"] for x in s.trials.values() if x.proof]
    top = f"{study.spec.design.top}.v"
    same = sum(1 for x in s.trials.values() if x.stage >= 0 and x.status == "done" and x.parent
               and x.outputs.get(top) and x.outputs.get(top) == s.trials[x.parent].outputs.get(top))
    return {"base": base.metrics, "best": best.metrics, "trials": trials, "wall": wall, "chain": proven_chain,
            "direct": proof.proven, "proof_s": proof_s, "dir": d, "tool": eng.tool, "unchanged": same,
            "run": sum(1 for x in s.trials.values() if x.stage >= 0 and x.status in ("done", "failed"))}


def _chain_proven(s, case: str) -> bool:
    while s.trials[case].parent:
        if not (s.trials[case].proof or {}).get("proven"):
            return False
        case = s.trials[case].parent
    return True


def greedy(design: str, tmp: Path, steps: int = 100, seed: int = 1) -> dict:
    """A random upsize or buffer each step, on the current netlist; kept when WNS improves."""
    from tests.conftest import StaBench

    b = StaBench(design, tmp / "greedy")
    base, cur = b.trial("g_base", "noop")
    best = base
    rng = random.Random(seed)
    for k in range(steps):
        if rng.random() < 0.5:
            eco, params = "resize_critical", {"paths": rng.randint(1, 10), "max_cells": rng.randint(1, 10)}
        else:
            eco, params = "buffer_fanout", {"paths": rng.randint(1, 10), "min_fanout": rng.randint(2, 8),
                                            "max_nets": rng.randint(1, 3)}
        m, d = b.trial(f"g_{k}", eco, params, parent=cur)
        if "failure" not in m and m["wns_ps"] > best["wns_ps"]:
            best, cur = m, d
    return {"base": base, "best": best}


def closed(base: float, best: float) -> float:
    return (best - base) / -base if base < 0 else 0.0


def main() -> None:
    args = sys.argv[1:]
    given = harness.take_option(args, "--template")
    template = Path(given) if given else None
    early = "--early" in args
    args = [a for a in args if a != "--early"]
    designs = args or list(DESIGNS)
    print(f"{'design':<7}{'base WNS':>10}{'noodle2 WNS':>13}{'closed':>8}{'TNS base→n2':>20}"
          f"{'greedy WNS':>12}{'closed':>8}{'TNS greedy':>12}{'proven':>8}{'proof s':>14}{'wall':>7}"
          f"{'run':>5}{'same':>6}" + (f"{'early: run':>12}{'saved':>7}{'WNS':>9}{'gain kept':>10}" if early else ""))
    for design in designs:
        with tempfile.TemporaryDirectory(dir=ROOT, prefix=".bench-") as tmp:
            r = run_study(design, template, Path(tmp), early=not early)
            e = run_study(design, template, Path(tmp) / "early", early=True) if early else None
            g = greedy(design, Path(tmp))
        b0, b1, g1 = r["base"]["wns_ps"], r["best"]["wns_ps"], g["best"]["wns_ps"]
        ps = r["proof_s"]
        print(f"{design:<7}{b0 / 1e3:>10.3f}{b1 / 1e3:>13.3f}{closed(b0, b1):>8.0%}"
              f"{r['base']['tns_ps'] / 1e3:>10.2f}→{r['best']['tns_ps'] / 1e3:<9.2f}"
              f"{g1 / 1e3:>12.3f}{closed(b0, g1):>8.0%}{g['best']['tns_ps'] / 1e3:>12.2f}"
              f"{('yes' if r['chain'] and r['direct'] else 'NO'):>8}"
              f"{(f'{max(ps):.2f} max' if ps else '—'):>14}{r['wall']:>6.0f}s{r['run']:>5}{r['unchanged']:>6}"
              + (f"{e['run']:>12}{1 - e['run'] / r['run']:>7.0%}{e['best']['wns_ps'] / 1e3:>9.3f}"
                 f"{(e['best']['wns_ps'] - b0) / (b1 - b0) if b1 != b0 else 1:>10.1%}" if e else ""))
    print("target: noodle2 closes ≥ 60 % of the WNS violation on every design, beats greedy on WNS and TNS, "
          "and every winner is proven equivalent (to its parent at each step, and directly to the base)"
          + ("; early: ≥ 40 % fewer trials where timing is met early, no design keeps < 99 % of its gain" if early else ""))


if __name__ == "__main__":
    main()
