"""`noodle2 ci`: a study's result against a recorded baseline, under per-metric thresholds.

A baseline is the best case's headline metrics and each stage's outcome.  A metric regresses when
it falls behind the baseline by more than its threshold (in its own unit, in the direction the
ranking knows: larger WNS is better, smaller area is better); a stage gate fails when a stage
the baseline finished did not finish.  The checks become a short table and JUnit XML.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from noodle2.engine.fmt import fmt_metric
from noodle2.engine.journal.state import StudyState
from noodle2.engine.reports.status import best_case

BASELINE_VERSION = 1


@dataclass(frozen=True)
class Check:
    kind: str  # metric | stage
    name: str
    passed: bool
    detail: str


def baseline(s: StudyState) -> dict[str, Any]:
    best = best_case(s)
    metrics = {k: v for k, v in ((best.metrics or {}) if best else {}).items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {"noodle2_baseline": BASELINE_VERSION, "study": s.name, "status": s.status,
            "best": {"case": best.case_id if best else None, "metrics": metrics},
            "stages": {st.name: {"status": st.status, "survivors": len(st.survivors)} for st in s.stages}}


def compare(base: dict[str, Any], cur: dict[str, Any], thresholds: dict[str, float], maximise: dict[str, bool],
            stage_gates: bool = True) -> list[Check]:
    """Pure: one check per thresholded metric, then one per stage of the baseline."""
    out: list[Check] = []
    bm, cm = base.get("best", {}).get("metrics", {}), cur.get("best", {}).get("metrics", {})
    for m, tol in sorted(thresholds.items()):
        b, c = bm.get(m), cm.get(m)
        if not isinstance(b, (int, float)):
            out.append(Check("metric", m, True, f"not in the baseline: {fmt_metric(m, c)} recorded only"))
            continue
        if not isinstance(c, (int, float)):
            out.append(Check("metric", m, False, f"missing from this run (baseline {fmt_metric(m, b)})"))
            continue
        behind = (b - c) if maximise.get(m, False) else (c - b)
        ok = behind <= tol
        out.append(Check("metric", m, ok, f"{fmt_metric(m, c)} against baseline {fmt_metric(m, b)}: "
                         + (f"{fmt_metric(m, behind)} behind, threshold {fmt_metric(m, tol)}" if behind > 0
                            else "not behind")))
    if stage_gates:
        for name, st in base.get("stages", {}).items():
            now = cur.get("stages", {}).get(name)
            if now is None:
                out.append(Check("stage", name, False, "stage missing from this run"))
            elif st.get("status") == "done" and now.get("status") != "done":
                out.append(Check("stage", name, False, f"{now.get('status')} (baseline: done)"))
            else:
                out.append(Check("stage", name, True, f"{now.get('status')}, {now.get('survivors')} survivor(s)"))
    return out


def junit(study: str, checks: list[Check], seconds: float) -> str:
    """One testsuite; a testcase per metric and per stage gate; regressions are failures."""
    failures = sum(not c.passed for c in checks)
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f'<testsuites name="noodle2 ci" tests="{len(checks)}" failures="{failures}" time="{seconds:.3f}">',
           f'  <testsuite name={quoteattr(f"noodle2.{study}")} tests="{len(checks)}" failures="{failures}" '
           f'errors="0" time="{seconds:.3f}">']
    for c in checks:
        classname = quoteattr(f"noodle2.{study}.{'metrics' if c.kind == 'metric' else 'stages'}")
        out.append(f"    <testcase classname={classname} name={quoteattr(c.name)} time=\"0\">")
        if c.passed:
            out.append(f"      <system-out>{escape(c.detail)}</system-out>")
        else:
            out.append(f"      <failure message={quoteattr(c.detail)} type=\"regression\">{escape(c.detail)}</failure>")
        out.append("    </testcase>")
    out += ["  </testsuite>", "</testsuites>"]
    return "\n".join(out) + "\n"


def table(checks: list[Check]) -> str:
    w = max((len(c.name) for c in checks), default=4)
    lines = [f"{'':2}{'check':<{w + 7}} result"]
    for c in checks:
        lines.append(f"{'✓' if c.passed else '✗'} {c.kind:<6} {c.name:<{w}} {'pass' if c.passed else 'REGRESSION'}  "
                     f"{c.detail}")
    return "\n".join(lines)
