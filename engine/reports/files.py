"""The files the engine keeps beside the journal: leaderboard, safety trace, lineage, post-route."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import orjson

from noodle2.engine.fmt import fmt_ns, plural
from noodle2.engine.fsutil import atomic_write, study_subdir
from noodle2.engine.journal.state import StudyState
from noodle2.engine.policy import priors, trace
from noodle2.engine.policy.ranking import metrics_of
from noodle2.engine.reports.status import best_case, eco_call, lineage, wns_delta
from noodle2.engine.study.models import StudySpec


def lineage_dot(s: StudyState, only: set[str] | None = None) -> str:
    """Every case (or those in `only`) from its parent, with its ECO and ΔWNS; the winner's path
    bold, failures dashed."""
    return "".join(lineage_lines(s, only))


def lineage_lines(s: StudyState, only: set[str] | None = None) -> Iterator[str]:
    """lineage_dot's lines, one at a time (100k trials: 13 MB never held whole)."""
    best = best_case(s)
    path = {t.case_id for t in lineage(s, best.case_id)} if best else set()
    yield "digraph lineage {\n"
    yield "  rankdir=LR; node [shape=box, fontname=Helvetica, fontsize=10];\n"
    shown = [t for t in s.trials.values() if only is None or t.case_id in only]
    for t in sorted(shown, key=lambda t: (t.stage, t.index)):
        m = t.metrics or {}
        pm = (s.trials[t.parent].metrics or {}) if t.parent else {}
        dw = wns_delta(m.get("wns_ps"), pm.get("wns_ps")) if t.parent else ""
        label = f"{t.case_id}\\n{eco_call(t)}" + (f"\\nΔWNS {dw} ns" if dw and dw != "—" else "")
        style = ', style="bold,filled", fillcolor="#dddddd", penwidth=2.5' if t.case_id in path else \
            (', style=dashed' if t.status != "done" else "")
        yield f'  "{t.case_id}" [label="{label}"{style}];\n'
        if t.parent:
            edge = ' [penwidth=2.5]' if t.case_id in path and t.parent in path else ""
            yield f'  "{t.parent}" -> "{t.case_id}"{edge};\n'
    yield "}\n"


def decision_cases(s: StudyState) -> set[str]:
    """The cases a drawing of a large study keeps: every stage's survivors and all their
    ancestors (the winner's path among them), back to the base."""
    keep = {s.base_case} if s.base_case else set()
    for st in s.stages:
        for c in st.survivors:
            keep |= {t.case_id for t in lineage(s, c)}
    return keep


def write_reports(d: Path, spec: StudySpec, s: StudyState) -> None:
    """Derived files, rewritten whole at each checkpoint from the journaled decisions; the
    journal stays the truth."""
    board = s.eco_stats
    atomic_write(d / "eco_leaderboard.json", orjson.dumps(board, option=orjson.OPT_INDENT_2))
    atomic_write(d / "eco_leaderboard.md", priors.leaderboard_md(board).encode())
    atomic_write(d / "safety_trace.jsonl", b"".join(orjson.dumps(g) + b"\n" for g in trace.numbered(s.gates)))
    atomic_write(d / "safety_trace.md", trace.trace_md(s.gates).encode())
    atomic_write(d / "lineage.dot", (line.encode() for line in lineage_lines(s)))
    for st in s.stages:
        summary = d / "stages" / f"{st.index}-{st.name}" / "summary.json"
        if st.status in ("done", "aborted", "skipped") and not summary.exists():  # final: written once
            atomic_write(study_subdir(d, "stages", f"{st.index}-{st.name}") / "summary.json",
                         orjson.dumps(stage_summary(s, st), option=orjson.OPT_INDENT_2))
        if st.status == "done":
            sd = study_subdir(d, "stages", f"{st.index}-{st.name}")
            atomic_write(sd / "pareto.json", orjson.dumps(
                {"stage": st.name, "ranking_kind": spec.stage_ranking(st.index).kind, "front": st.front,
                 "survivors": st.survivors,
                 "on_front": [c for c in st.survivors if c in st.front], "excluded_by_rails": st.excluded,
                 "points": {c: {m: (s.trials[c].metrics or {}).get(m) for m in metrics_of(spec.stage_ranking(st.index))}
                            for c in st.ranking}}, option=orjson.OPT_INDENT_2))
            if st.agreement is not None:
                atomic_write(sd / "rank_agreement.json", orjson.dumps({"stage": st.name, **st.agreement},
                                                                      option=orjson.OPT_INDENT_2))
    if any(st.agreement is not None for st in s.stages):
        atomic_write(d / "postroute.md", postroute_md(s).encode())


def stage_summary(s: StudyState, st: Any) -> dict[str, Any]:
    """A stage as journaled: its plan, outcome, survivors, why it ended, and its timing."""
    trials = [s.trials[c] for c in st.cases if c in s.trials]
    tool_s = sum((t.resources or {}).get("wall_s") or 0 for t in trials)
    wall = (st.ended_at - st.started_at) if st.started_at and st.ended_at else None
    return {"stage": st.index, "name": st.name, "mode": st.mode, "status": st.status, "reason": st.reason,
            "after": [s.stages[i].name for i in st.after], "parents": st.parents,
            "plan": [{"case": t.case_id, "parent": t.parent, "eco": t.eco, "params": t.params} for t in trials],
            "outcome": {t.case_id: (t.status if t.status != "failed" else f"failed: {(t.failure or {}).get('type')}")
                        for t in trials},
            "survivors": st.survivors, "ranking": st.ranking, "excluded_by_rails": st.excluded,
            "budget": st.budget, "trials_run": sum(t.status in ("done", "failed") for t in trials),
            "timing": {"started": st.started_at, "ended": st.ended_at, "wall_s": round(wall, 3) if wall else None,
                       "tool_s": round(tool_s, 3)}}


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
