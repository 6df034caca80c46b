"""The safety trace: every gate, in the order the study met it, with the values compared.
Recomputed from spec + folded state, so it can never disagree with the journal."""
from __future__ import annotations

from typing import Any

from engine.ecos import CATALOG
from engine.policy import containment, priors, safety
from engine.spec import StudySpec
from engine.state import StudyState


def gates(spec: StudySpec, state: StudyState) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def gate(name: str, subject: str, ok: bool, values: dict[str, Any], stage: int | None = None) -> None:
        out.append({"n": len(out) + 1, "gate": name, "stage": stage, "subject": subject,
                    "result": "pass" if ok else "fail", "values": values})

    for i, st in enumerate(spec.stages):
        for e in st.ecos:
            why = safety.refusal(spec, i, e)
            gate("legality", e, why is None, {"class": CATALOG[e].eco_class.value, "domain": spec.study.safety_domain,
                                              **({"refused": why} if why else {})}, i)
    base = state.base()
    if base is not None and base.status in ("done", "failed"):
        gate("base_case", base.case_id, base.status == "done",
             {"wns_ps": (base.metrics or {}).get("wns_ps"), "failure": (base.failure or {}).get("type")})
    started = sorted((s for s in state.stages if s.started_at is not None), key=lambda s: (s.started_at, s.index))
    for st in started:
        i = st.index
        before = containment.scope(spec, state, i, include_self=False)
        off, off_cls = containment.disabled(spec, before)
        effects = priors.effectiveness(state, before, spec.priors)
        for e in spec.stages[i].ecos:
            fails = sum(1 for t in before if t.eco == e and t.status == "failed")
            gate("eco_failure_limit", e, e not in off, {"failures": fails, "limit": spec.abort.eco_failure_limit}, i)
            cls = CATALOG[e].eco_class.value
            gate("eco_class_enabled", f"{e}:{cls}", cls not in off_cls,
                 {"disabled_in_class": sum(1 for x in off if CATALOG[x].eco_class.value == cls),
                  "limit": spec.abort.class_disable_after}, i)
            prior = effects[e].prior if e in effects else "unknown"
            gate("prior", e, prior != "suspicious" or spec.study.safety_domain == "sandbox", {"prior": prior}, i)
        rail = spec.rails.max_wns_regression_vs_parent_ps
        if rail is not None:
            for t in state.stage_trials(i):
                if t.status != "done":
                    continue
                pw = (state.trials[t.parent].metrics or {}).get("wns_ps") if t.parent else None
                w = (t.metrics or {}).get("wns_ps")
                if isinstance(pw, (int, float)) and isinstance(w, (int, float)):
                    gate("rail_wns_vs_parent", t.case_id, w >= pw - rail, {"wns_ps": w, "parent_wns_ps": pw, "rail_ps": rail}, i)
        if st.status in ("done", "aborted"):
            ts = state.stage_trials(i)
            gate("stage_not_all_failed", st.name, any(t.status == "done" for t in ts),
                 {"done": sum(t.status == "done" for t in ts), "trials": len(ts)}, i)
            crashes = containment.crash_parents(containment.scope(spec, state, i, include_self=True))
            worst = max(crashes.items(), key=lambda kv: (len(kv[1]), kv[0]), default=(None, set()))
            gate("catastrophic_crashes", worst[0] or "-", len(worst[1]) < spec.abort.catastrophic_crash_cases,
                 {"crash_parents": len(worst[1]), "limit": spec.abort.catastrophic_crash_cases}, i)
            limit = spec.stages[i].max_wns_regression_ps
            best, pbest = containment.stage_best_wns(state, i), containment.parents_best_wns(state, i)
            if limit is not None and best is not None and pbest is not None:
                gate("stage_wns_regression", st.name, best >= pbest - limit,
                     {"best_wns_ps": best, "parents_best_wns_ps": pbest, "limit_ps": limit}, i)
            if spec.abort.plateau_stages:
                g = containment.gain(state, i)
                gate("plateau", st.name, containment.plateau(spec, state, i) is None,
                     {"gain_ps": g, "min_gain_ps": spec.abort.plateau_min_gain_ps, "stages": spec.abort.plateau_stages}, i)
    return out


def trace_md(rows: list[dict[str, Any]]) -> str:
    out = ["| # | stage | gate | subject | result | values |", "|---|---|---|---|---|---|"]
    for r in rows:
        vals = ", ".join(f"{k}={v}" for k, v in r["values"].items())
        out.append(f"| {r['n']} | {'' if r['stage'] is None else r['stage']} | {r['gate']} | {r['subject']} | "
                   f"{'✓ pass' if r['result'] == 'pass' else '✗ FAIL'} | {vals} |")
    return "\n".join(out) + "\n"
