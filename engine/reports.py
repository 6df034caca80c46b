"""Summaries of a folded study: status text, best case, lineage, and the report files the
engine writes beside the journal (leaderboard, Pareto fronts, safety trace)."""
from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from engine.ecos import ROUTE_MODES
from engine.errors import N2Error, Problem, validation_reason
from engine.fsutil import atomic_write, study_subdir
from engine.policy import priors, trace
from engine.policy.ranking import Candidate, metrics_of, rank
from engine.spec import Ranking, Study, StudySpec
from engine.state import TERMINAL, StageState, StudyState, TrialState


def best_case(s: StudyState) -> TrialState | None:
    """The study's answer: the best survivor of any stage, by the study's own ranking.  Once a
    stage has placed and routed, only routed survivors count: a pre-route number is not
    comparable with a post-route one, and the post-route one is the truth."""
    done = [st for st in s.stages if st.status == "done"]
    routed = [st for st in done if st.mode in ROUTE_MODES]
    survivors = sorted({c for st in (routed or done) for c in st.survivors})
    if not survivors:
        return None
    ranking = Ranking.model_validate(s.spec.get("ranking", {}))
    base = s.base()
    order, _ = rank([Candidate(c, s.trials[c].metrics or {}) for c in survivors], ranking,
                    base.metrics if base else None, need=1)
    return s.trials[order[0]]


def stage_best(s: StudyState, st: StageState, metric: str = "wns_ps") -> float | None:
    """The stage's best so far: its first survivor once chosen, else the best finished trial."""
    if st.survivors and st.status == "done":
        return (s.trials[st.survivors[0]].metrics or {}).get(metric)
    vals = [(s.trials[c].metrics or {}).get(metric) for c in st.cases if s.trials[c].status == "done"]
    vals = [v for v in vals if isinstance(v, (int, float))]
    return max(vals) if vals else None


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def fmt_ns(ps: float | None) -> str:
    return "—" if ps is None else f"{ps / 1000:+.3f}"


def trial_line(t: TrialState) -> str:
    """One line per finished trial: case, ECO, key metrics, status."""
    eco = eco_call(t)
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
    shown = [d for d in s.decisions if d["action"] != "order_ecos"][-5:]
    if shown:
        lines.append("")
        lines.append("policy decisions (latest):")
        lines += [f"  ! {d['scope']} {d['action']} {d['subject']}: {d['reason']}" for d in shown]
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


def lineage_dot(s: StudyState) -> str:
    """Every case from its parent, with its ECO and ΔWNS; the winner's path bold, failures dashed."""
    best = best_case(s)
    path = {t.case_id for t in lineage(s, best.case_id)} if best else set()
    out = ["digraph lineage {", "  rankdir=LR; node [shape=box, fontname=Helvetica, fontsize=10];"]
    for t in sorted(s.trials.values(), key=lambda t: (t.stage, t.index)):
        m = t.metrics or {}
        pm = (s.trials[t.parent].metrics or {}) if t.parent else {}
        dw = wns_delta(m.get("wns_ps"), pm.get("wns_ps")) if t.parent else ""
        label = f"{t.case_id}\\n{eco_call(t)}" + (f"\\nΔWNS {dw} ns" if dw and dw != "—" else "")
        style = ', style="bold,filled", fillcolor="#dddddd", penwidth=2.5' if t.case_id in path else \
            (', style=dashed' if t.status != "done" else "")
        out.append(f'  "{t.case_id}" [label="{label}"{style}];')
        if t.parent:
            edge = ' [penwidth=2.5]' if t.case_id in path and t.parent in path else ""
            out.append(f'  "{t.parent}" -> "{t.case_id}"{edge};')
    out.append("}")
    return "\n".join(out) + "\n"


def write_reports(d: Path, spec: StudySpec, s: StudyState) -> None:
    """Derived files, rewritten whole at each checkpoint from the journaled decisions; the
    journal stays the truth."""
    board = s.eco_stats
    atomic_write(d / "eco_leaderboard.json", orjson.dumps(board, option=orjson.OPT_INDENT_2))
    atomic_write(d / "eco_leaderboard.md", priors.leaderboard_md(board).encode())
    atomic_write(d / "safety_trace.jsonl", b"".join(orjson.dumps(g) + b"\n" for g in trace.numbered(s.gates)))
    atomic_write(d / "safety_trace.md", trace.trace_md(s.gates).encode())
    atomic_write(d / "lineage.dot", lineage_dot(s).encode())
    for st in s.stages:
        if st.status == "done":
            sd = study_subdir(d, "stages", f"{st.index}-{st.name}")
            atomic_write(sd / "pareto.json", orjson.dumps(
                {"stage": st.name, "ranking_kind": spec.ranking.kind, "front": st.front, "survivors": st.survivors,
                 "on_front": [c for c in st.survivors if c in st.front], "excluded_by_rails": st.excluded,
                 "points": {c: {m: (s.trials[c].metrics or {}).get(m) for m in metrics_of(spec.ranking)}
                            for c in st.ranking}}, option=orjson.OPT_INDENT_2))
            if st.agreement is not None:
                atomic_write(sd / "rank_agreement.json", orjson.dumps({"stage": st.name, **st.agreement},
                                                                      option=orjson.OPT_INDENT_2))
    if any(st.agreement is not None for st in s.stages):
        atomic_write(d / "postroute.md", postroute_md(s).encode())


def agreement_line(a: dict[str, Any]) -> str:
    """One line on how the pre-route ranking held after routing."""
    rho = a.get("spearman")
    n = len(a.get("post_ranking", []))
    if a.get("winner_pre_rank") == 0:
        return f"{plural(n, 'trial')} of one netlist: pre-route numbers tie, only routing told them apart"
    held = "the pre-route winner won" if a.get("winner_pre_rank") == 1 else \
        f"the post-route winner ranked #{a.get('winner_pre_rank')} of {n} before routing"
    return (f"pre→post-route rank correlation ρ = {rho:+.2f} over {n} trials; " if rho is not None
            else f"{plural(n, 'trial')} routed; ") + held


def postroute_md(s: StudyState) -> str:
    """Per route stage: how each trial ranked before and after place and route."""
    out = ["# Post-route verification", ""]
    for st in s.stages:
        a = st.agreement
        if a is None:
            continue
        out += [f"## stage {st.name} [{st.mode}]", "", agreement_line(a), "",
                "| case | rank pre | rank post | WNS pre ns | WNS post ns | Δ ns | hold ns | hot_ratio | wire mm | vias |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        pre = {c: i + 1 for i, c in enumerate(a["pre_ranking"])}
        for i, c in enumerate(a["post_ranking"]):
            m = s.trials[c].metrics or {}
            w, w0 = m.get("wns_ps"), m.get("pre_wns_ps")
            delta = f"{(w - w0) / 1000:+.3f}" if isinstance(w, (int, float)) and isinstance(w0, (int, float)) else "—"
            wire = m.get("wirelength_um")
            out.append(f"| {c} | {pre.get(c, '—')} | {i + 1} | {fmt_ns(w0)} | {fmt_ns(w)} | {delta} | "
                       f"{fmt_ns(m.get('hold_worst_ps'))} | {m.get('hot_ratio', '—')} | "
                       f"{wire / 1000:.2f} | {m.get('vias', '—')} |" if isinstance(wire, (int, float)) else
                       f"| {c} | {pre.get(c, '—')} | {i + 1} | {fmt_ns(w0)} | {fmt_ns(w)} | {delta} | — | — | — | — |")
        out.append("")
    return "\n".join(out)


# --- imported priors: other studies' leaderboards, never implicit -----------------------------

MAX_IMPORT_BYTES = 16 << 20


class ImportedRow(BaseModel):
    model_config = ConfigDict(extra="ignore")
    eco: str
    trials: Annotated[int, Field(ge=0)] = 0
    successes: Annotated[int, Field(ge=0)] = 0
    failures: Annotated[int, Field(ge=0)] = 0
    sum_dwns: Annotated[float, Field(allow_inf_nan=False)] = 0.0
    sum_dtns: Annotated[float, Field(allow_inf_nan=False)] = 0.0
    measured: Annotated[int, Field(ge=0)] = 0


def import_sources(study: Study) -> list[Path]:
    """Each `priors.import_from` entry as a leaderboard file, resolved against the study file
    (a study directory stands for its eco_leaderboard.json)."""
    out = []
    for src in study.spec.priors.import_from:
        p = study.resolve(src)
        out.append(p / "eco_leaderboard.json" if p.is_dir() else p)
    return out


def _read_import(f: Path) -> list[ImportedRow]:
    from engine.fsutil import read_capped

    rows = orjson.loads(read_capped(f, MAX_IMPORT_BYTES))
    if not isinstance(rows, list):
        raise ValueError("is not a leaderboard (a JSON list of ECO rows)")
    out = []
    for i, r in enumerate(rows):
        try:
            out.append(ImportedRow.model_validate(r))
        except ValueError as e:
            raise ValueError(f"row {i}: {validation_reason(e)}") from None
    return out


def import_problems(study: Study) -> list[Problem]:
    out = []
    for i, f in enumerate(import_sources(study)):
        try:
            _read_import(f)
        except (OSError, ValueError) as e:  # JSON and validation errors are ValueErrors
            why = e.strerror if isinstance(e, OSError) and e.strerror else validation_reason(e)
            out.append(Problem("N2-E207", f"cannot import priors from {f}: {why}", f"priors.import_from[{i}]"))
    return out


def load_imported_priors(study: Study) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for f in import_sources(study):
        try:
            rows = _read_import(f)
        except (OSError, ValueError) as e:
            raise N2Error.one("N2-E207", f"cannot import priors from {f}: {e}", "priors.import_from") from None
        for r in rows:
            m = merged.setdefault(r.eco, {"trials": 0, "successes": 0, "failures": 0, "sum_dwns": 0.0,
                                          "sum_dtns": 0.0, "measured": 0})
            for k in m:
                m[k] += getattr(r, k)
    return merged


def imported_provenance(study: Study) -> list[dict[str, str]]:
    return [{"from": str(f), "sha256": hashlib.sha256(f.read_bytes()).hexdigest() if f.is_file() else ""}
            for f in import_sources(study)]
