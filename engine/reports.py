"""Read-only summaries of a folded study: status text, best case, lineage."""
from __future__ import annotations

import time

from engine.policy.ranking import Candidate, rank
from engine.spec import Ranking
from engine.state import TERMINAL, StudyState, TrialState


def best_case(s: StudyState) -> TrialState | None:
    """The study's answer: the best survivor of any stage, by the study's own ranking."""
    survivors = sorted({c for st in s.stages if st.status == "done" for c in st.survivors})
    if not survivors:
        return None
    ranking = Ranking.model_validate(s.spec.get("ranking", {}))
    base = s.base()
    order, _ = rank([Candidate(c, s.trials[c].metrics or {}) for c in survivors], ranking,
                    base.metrics if base else None, need=1)
    return s.trials[order[0]]


def fmt_ns(ps: float | None) -> str:
    return "—" if ps is None else f"{ps / 1000:+.3f}"


def trial_line(t: TrialState) -> str:
    """One line per finished trial: case, ECO, key metrics, status."""
    params = ",".join(f"{k}={v:g}" for k, v in t.params.items())
    eco = f"{t.eco}({params})" if params else t.eco
    wall = (t.resources or {}).get("wall_s")
    took = f"{wall:6.2f}s" if isinstance(wall, (int, float)) else "      "
    if t.status == "done":
        m = t.metrics or {}
        parts = []
        if "wns_ps" in m:
            parts.append(f"WNS {fmt_ns(m['wns_ps'])} ns")
        if "tns_ps" in m:
            parts.append(f"TNS {fmt_ns(m['tns_ps'])} ns")
        if "power_total_w" in m:
            parts.append(f"P {m['power_total_w'] * 1e3:.3f} mW")
        if "area_um2" in m:
            parts.append(f"A {m['area_um2']:.0f} µm²")
        return f"✓ {t.case_id:<16} {eco:<40} {'  '.join(parts)}  {took}"
    f = t.failure or {}
    return f"✗ {t.case_id:<16} {eco:<40} {f.get('type')}: {f.get('reason')}  {took}"


def status_text(s: StudyState, holder: int | None, now: float | None = None) -> str:
    now = now or time.time()
    state = s.status
    if state == "running" and holder is None:
        state = "interrupted"  # the journal says running, but no engine holds the study
    done, total = s.counts()
    lines = [f"study     {s.name}   [{state}]" + (f"  engine PID {holder}" if holder else ""),
             f"domain    {s.safety_domain}   max_parallel {s.max_parallel}   resumes {s.resumes}",
             f"trials    {done}/{total} finished"]
    if s.reason:
        lines.append(f"reason    {s.reason}")
    base = s.base()
    if base is not None and base.metrics:
        lines.append(f"base      {base.case_id}  WNS {fmt_ns(base.metrics.get('wns_ps'))} ns  TNS {fmt_ns(base.metrics.get('tns_ps'))} ns")
    elif base is not None and base.failure:
        lines.append(f"base      {base.case_id}  ✗ {base.failure.get('type')}: {base.failure.get('reason')}")
    lines.append("")
    lines.append(f"  {'#':>2} {'stage':<14} {'status':<9} {'done':>9} {'fail':>5}  {'best WNS ns':>11}  survivors")
    for st in s.stages:
        ts = [s.trials[c] for c in st.cases]
        fin = sum(t.status in TERMINAL for t in ts)
        failed = sum(t.status == "failed" for t in ts)
        best = s.trials[st.survivors[0]].metrics.get("wns_ps") if st.survivors and s.trials[st.survivors[0]].metrics else None
        surv = ", ".join(st.survivors[:3]) + (" …" if len(st.survivors) > 3 else "")
        lines.append(f"  {st.index:>2} {st.name:<14} {st.status:<9} {fin:>4}/{st.budget:<4} {failed:>5}  {fmt_ns(best):>11}  {surv}")
    best = best_case(s)
    if best is not None and best.metrics:
        lines.append("")
        lines.append(f"best      {best.case_id}  WNS {fmt_ns(best.metrics.get('wns_ps'))} ns  TNS {fmt_ns(best.metrics.get('tns_ps'))} ns")
    if s.last_event_at:
        lines.append(f"last      {int(now - s.last_event_at)} s ago")
    if state == "interrupted":
        lines.append("resume    noodle2 resume <this study dir>")
    return "\n".join(lines)


def lineage_dot(s: StudyState) -> str:
    out = ["digraph lineage {", "  rankdir=LR;"]
    for t in s.trials.values():
        if t.parent:
            out.append(f'  "{t.parent}" -> "{t.case_id}" [label="{t.eco}"];')
    survivors = {c for st in s.stages for c in st.survivors}
    for c in sorted(survivors):
        out.append(f'  "{c}" [style=bold];')
    out.append("}")
    return "\n".join(out) + "\n"
