"""Summaries of a folded study: status text, best case, lineage, and the report files the
engine writes beside the journal (leaderboard, Pareto fronts, safety trace)."""
from __future__ import annotations

import time
from typing import Any

from noodle2.engine.fmt import decision_text, fmt_local, fmt_ns, fmt_seconds
from noodle2.engine.journal.state import PEAK_METRICS, TERMINAL, StageState, StudyState, TrialState


def best_case(s: StudyState) -> TrialState | None:
    """The study's answer as the engine decided it when its last stage finished."""
    if s.best:
        return s.trials.get(s.best)
    if not any(st.status == "done" and st.survivors for st in s.stages):
        return None
    # a journal from before stage_finished carried the decision: decide it here, as the engine did
    from noodle2.engine.policy.ranking import study_best
    from noodle2.engine.study.models import Ranking

    best = study_best(s, Ranking.model_validate(s.spec.get("ranking", {})))
    return s.trials[best] if best else None


def stage_best(s: StudyState, st: StageState, metric: str = "wns_ps") -> float | None:
    """The stage's best so far: its first survivor once chosen, else the best finished trial."""
    if st.survivors and st.status == "done":
        return (s.trials[st.survivors[0]].metrics or {}).get(metric)
    if metric in PEAK_METRICS:  # kept by the reducer as trials finish: no walk over a 10k-trial stage
        return st.peak.get(metric)
    vals = [(s.trials[c].metrics or {}).get(metric) for c in st.cases if s.trials[c].status == "done"]
    vals = [v for v in vals if isinstance(v, (int, float))]
    return max(vals) if vals else None


def trial_seconds(t: TrialState) -> float | None:
    """A trial's time as the views show it: from its start to its result in the journal (the
    tool's run and the reading of its outputs), else the tool's own wall time."""
    if t.started_at is not None and t.ended_at is not None:
        return t.ended_at - t.started_at
    wall = (t.resources or {}).get("wall_s")
    return wall if isinstance(wall, (int, float)) else None


def trial_line(t: TrialState) -> str:
    """One line per finished trial: case, ECO, key metrics, status."""
    eco = eco_call(t)
    took = f"{fmt_seconds(trial_seconds(t)):>6}"
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
        reused = (t.resources or {}).get("reused_from")
        return f"✓ {t.case_id:<16} {eco:<40} {'  '.join(parts)}  " + (f"↺ as {reused}" if reused else took)
    f = t.failure or {}
    if t.status == "cancelled":
        return f"⊘ {t.case_id:<16} {eco:<40} cancelled: {f.get('reason')}  {took}"
    return f"✗ {t.case_id:<16} {eco:<40} {f.get('type')}: {f.get('reason')}  {took}"


def effective_status(s: StudyState, holder: int | None) -> str:
    """The journal says running but no engine holds the study: it was interrupted (kill -9)."""
    return "interrupted" if s.status in ("running", "new") and holder is None and s.seq else s.status


def progress(s: StudyState) -> str:
    done, total = s.counts()
    finished = sum(st.status in ("done", "aborted", "skipped") for st in s.stages)
    return f"stage {min(finished + 1, len(s.stages))}/{len(s.stages)}  {done}/{total}"


def best_vs_base(s: StudyState) -> str:
    best, base = best_case(s), s.base()
    bw = (best.metrics or {}).get("wns_ps") if best else None
    b0 = (base.metrics or {}).get("wns_ps") if base else None
    if bw is None:
        return "—" if b0 is None else f"base {fmt_ns(b0)}"
    if best is not None and "pre_wns_ps" in (best.metrics or {}):
        return f"{fmt_ns(bw)} routed"  # the base was never routed: no like-for-like delta
    return f"{fmt_ns(bw)} ({(bw - b0) / 1000:+.3f})" if b0 is not None else fmt_ns(bw)


def status_json(s: StudyState, holder: int | None) -> dict[str, Any]:
    """The summary `status --json` prints: what status_text shows, in raw units."""
    best, base = best_case(s), s.base()
    done, total = s.counts()
    return {"name": s.name, "status": effective_status(s, holder), "engine_pid": holder, "reason": s.reason,
            "safety_domain": s.safety_domain, "max_parallel": s.max_parallel, "resumes": s.resumes,
            "trials": {"finished": done, "planned": total},
            "base": {"case": base.case_id, "metrics": _headline(base.metrics)} if base else None,
            "best": {"case": best.case_id, "metrics": _headline(best.metrics)} if best else None,
            "stages": [{"name": st.name, "status": st.status, "planned": st.budget,
                        "done": sum(s.trials[c].status == "done" for c in st.cases),
                        "failed": sum(s.trials[c].status == "failed" for c in st.cases),
                        "cancelled": sum(s.trials[c].status == "cancelled" for c in st.cases),
                        "survivors": st.survivors, "reason": st.reason} for st in s.stages],
            "decisions": [d for d in s.decisions if d["action"] != "order_ecos"][-20:],
            "last_event_at": s.last_event_at}


def _headline(m: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (m or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def status_text(s: StudyState, holder: int | None, now: float | None = None, resume: str | None = None) -> str:
    now = now or time.time()
    state = effective_status(s, holder)
    done, total = s.counts()
    lines = [f"study     {s.name}   [{state}]" + (f"  engine PID {holder}" if holder else ""),
             f"domain    {s.safety_domain}   max_parallel {s.max_parallel}   resumes {s.resumes}",
             f"trials    {done}/{total} finished"
             + (f"   started {fmt_local(s.started_at, seconds=True)}" if s.started_at else "")
             + (f", last event {fmt_local(s.last_event_at, seconds=True)}" if s.last_event_at else "")]
    if s.reason:
        lines.append(f"reason    {s.reason}")
    base = s.base()
    if base is not None and base.metrics:
        lines.append(f"base      {base.case_id}  WNS {fmt_ns(base.metrics.get('wns_ps'))} ns  TNS {fmt_ns(base.metrics.get('tns_ps'))} ns")
    elif base is not None and base.failure:
        lines.append(f"base      {base.case_id}  ✗ {base.failure.get('type')}: {base.failure.get('reason')}")
    lines.append("")
    lines.append(f"  {'#':>2} {'stage':<14} {'status':<11} {'done':>9} {'fail':>5}  {'best WNS ns':>11}  survivors")
    for st in s.stages:
        ts = [s.trials[c] for c in st.cases]
        fin = sum(t.status in TERMINAL for t in ts)
        failed = sum(t.status == "failed" for t in ts)
        best = s.trials[st.survivors[0]].metrics.get("wns_ps") if st.survivors and s.trials[st.survivors[0]].metrics else None
        surv = ", ".join(st.survivors[:3]) + (" …" if len(st.survivors) > 3 else "")
        shown = st.status if holder is not None or st.status != "running" else "interrupted"  # no engine runs it
        lines.append(f"  {st.index:>2} {st.name:<14} {shown:<11} {fin:>4}/{st.budget:<4} {failed:>5}  {fmt_ns(best):>11}  {surv}")
    shown = [d for d in s.decisions if d["action"] != "order_ecos"][-5:]
    if shown:
        lines.append("")
        lines.append("policy decisions (latest):")
        lines += [f"  ! {decision_text(d['action'], d['subject'])}: {d['reason']}" for d in shown]
    best = best_case(s)
    if best is not None and best.metrics:
        lines.append("")
        lines.append(f"best      {best.case_id}  WNS {fmt_ns(best.metrics.get('wns_ps'))} ns  TNS {fmt_ns(best.metrics.get('tns_ps'))} ns")
    if s.last_event_at:
        lines.append(f"last      {int(now - s.last_event_at)} s ago")
    if state == "interrupted":
        lines.append(f"resume    {resume or 'noodle2 resume <this study dir>'}")
    return "\n".join(lines)


def lineage(s: StudyState, case: str) -> list[TrialState]:
    """Base first, the case last."""
    chain = []
    t = s.trials.get(case)
    while t is not None:
        chain.append(t)
        t = s.trials.get(t.parent or "")
    return list(reversed(chain))


def eco_call(t: TrialState) -> str:
    params = ",".join(f"{k}={v:g}" for k, v in t.params.items() if isinstance(v, (int, float)))
    return f"{t.eco}({params})" if params else t.eco


def wns_delta(a: Any, b: Any) -> str:
    return f"{(a - b) / 1000:+.3f}" if isinstance(a, (int, float)) and isinstance(b, (int, float)) else "—"




def final_summary(s: StudyState) -> str:
    """The reason a completed study gives: its best case against the base."""
    best, base = best_case(s), s.base()
    if best is None or base is None or not base.metrics:
        return ""
    w, w0 = best.metrics.get("wns_ps"), base.metrics.get("wns_ps")
    if not isinstance(w, (int, float)) or not isinstance(w0, (int, float)):
        return f"best {best.case_id}"
    pre = best.metrics.get("pre_wns_ps")
    if isinstance(pre, (int, float)):  # routed: the base was timed before routing only
        return (f"best {best.case_id}: post-route WNS {w / 1000:+.3f} ns (pre-route {pre / 1000:+.3f} ns; "
                f"base pre-route {w0 / 1000:+.3f} ns)")
    return f"best {best.case_id}: WNS {w / 1000:+.3f} ns (base {w0 / 1000:+.3f} ns)"
