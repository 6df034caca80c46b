"""Containment and abort rails.  Pure functions over folded state.

Decisions for a stage are computed from the trials of its ancestor stages only, so concurrent
branches and completion order can never change what a stage plans.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from noodle2.engine.catalog.ecos import catalog
from noodle2.engine.journal import events as ev
from noodle2.engine.journal.state import StudyState, TrialState
from noodle2.engine.policy import priors, safety
from noodle2.engine.policy.failures import charged
from noodle2.engine.policy.ranking import maximise, metrics_of
from noodle2.engine.policy.trace import gate
from noodle2.engine.study.models import StudySpec

Gates = list[dict[str, Any]]


def ancestors(spec: StudySpec, stage: int) -> list[int]:
    deps = spec.stage_deps()
    seen: set[int] = set()
    todo = list(deps[stage])
    while todo:
        d = todo.pop()
        if d not in seen:
            seen.add(d)
            todo += deps[d]
    return sorted(seen)


def scope(spec: StudySpec, state: StudyState, stage: int, include_self: bool) -> list[TrialState]:
    stages = ancestors(spec, stage) + ([stage] if include_self else [])
    return [state.trials[c] for i in stages if i < len(state.stages) for c in state.stages[i].cases]


def disabled(spec: StudySpec, trials: list[TrialState]) -> tuple[dict[str, str], dict[str, str]]:
    """(eco -> reason, class -> reason) from failure counts."""
    a = spec.abort
    fails: dict[str, list[str]] = defaultdict(list)
    for t in trials:
        if t.status == "failed" and t.stage >= 0 and t.eco != priors.CONTROL and charged(t.failure):
            fails[t.eco].append(t.case_id)
    ecos = {e: f"failed {len(cs)} times (limit {a.eco_failure_limit}): {', '.join(sorted(cs)[:4])}"
            for e, cs in sorted(fails.items()) if len(cs) >= a.eco_failure_limit}
    by_class: dict[str, list[str]] = defaultdict(list)
    for e in ecos:
        by_class[catalog(spec)[e].eco_class.value].append(e)
    classes = {c: f"{len(es)} of its ECOs disabled ({', '.join(es)}; limit {a.class_disable_after})"
               for c, es in sorted(by_class.items()) if len(es) >= a.class_disable_after}
    return ecos, classes


def plan_ecos(spec: StudySpec, state: StudyState, stage: int, implemented: set[str],
              imported: dict[str, dict[str, Any]] | None = None
              ) -> tuple[list[str], list[ev.PolicyDecision], Gates, dict[str, priors.Effect]]:
    """The stage's ECOs in budget order, a decision for every ECO left out, the gates checked
    on the way, and the effectiveness the priors were judged on (imports included)."""
    trials = scope(spec, state, stage, include_self=False)
    off_ecos, off_classes = disabled(spec, trials)
    effects = priors.effectiveness(state, trials, spec.priors, imported, spec.ranking)
    fails = defaultdict(int)
    for t in trials:
        fails[t.eco] += t.status == "failed" and t.stage >= 0
    out: list[ev.PolicyDecision] = []
    gates: Gates = []
    usable = []
    known = catalog(spec)
    for e in spec.stages[stage].ecos:
        cls = known[e].eco_class.value
        gates.append(gate("eco_failure_limit", e, e not in off_ecos,
                          {"failures": fails[e], "limit": spec.abort.eco_failure_limit}, stage))
        gates.append(gate("eco_class_enabled", f"{e}:{cls}", cls not in off_classes,
                          {"disabled_in_class": sum(1 for x in off_ecos if known[x].eco_class.value == cls),
                           "limit": spec.abort.class_disable_after}, stage))
        why = (safety.refusal(spec, stage, e) or ("not implemented by the tool" if e not in implemented else None)
               or off_ecos.get(e) or (f"class {cls} disabled: {off_classes[cls]}" if cls in off_classes else None))
        if why is None:
            usable.append(e)
        else:
            out.append(ev.PolicyDecision(scope="eco", action="skip_eco", subject=e, reason=why, stage=stage))
    ordered, skipped = priors.order(usable, effects, spec.study.safety_domain)
    for e in spec.stages[stage].ecos:
        if e != priors.CONTROL:
            prior = effects[e].prior if e in effects else "unknown"
            gates.append(gate("prior", e, e not in skipped, {"prior": prior, "domain": spec.study.safety_domain},
                              stage))
    out += [ev.PolicyDecision(scope="eco", action="skip_eco", subject=e, reason=r, stage=stage) for e, r in skipped.items()]
    if ordered != usable:
        out.append(ev.PolicyDecision(scope="eco", action="order_ecos", subject=",".join(ordered), stage=stage,
                                     reason="budget order by prior: " + ", ".join(
                                         f"{e}={effects[e].prior if e in effects else 'unknown'}" for e in ordered)))
    return ordered, out, gates, effects


def crash_parents(trials: list[TrialState]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for t in trials:
        if t.status == "failed" and (t.failure or {}).get("type") == "tool_crash" and t.parent:
            out[t.eco].add(t.parent)
    return out


def after_stage(spec: StudySpec, state: StudyState, stage: int) -> tuple[list[ev.PolicyDecision], Gates]:
    """Decisions once a stage's trials are all in: new disables, catastrophe, WNS rail, plateau;
    and every gate checked for them, passed or failed."""
    trials = scope(spec, state, stage, include_self=True)
    mine = state.stage_trials(stage)
    already = {(d["action"], d["subject"]) for d in state.decisions}
    out: list[ev.PolicyDecision] = []
    name = spec.stages[stage].name
    gates: Gates = [gate("stage_not_all_failed", name, any(t.status == "done" for t in mine),
                         {"done": sum(t.status == "done" for t in mine), "trials": len(mine)}, stage)]
    off_ecos, off_classes = disabled(spec, trials)
    for e, why in off_ecos.items():
        if ("disable_eco", e) not in already:
            out.append(ev.PolicyDecision(scope="eco", action="disable_eco", subject=e, reason=why, stage=stage))
    for c, why in off_classes.items():
        if ("disable_class", c) not in already:
            out.append(ev.PolicyDecision(scope="eco_class", action="disable_class", subject=c, reason=why, stage=stage))
    crashes = crash_parents(trials)
    worst = max(crashes.items(), key=lambda kv: (len(kv[1]), kv[0]), default=(None, set()))
    limit_c = spec.abort.catastrophic_crash_cases
    gates.append(gate("catastrophic_crashes", worst[0] or "-", len(worst[1]) < limit_c,
                      {"crash_parents": len(worst[1]), "limit": limit_c}, stage))
    for e, parents in sorted(crashes.items()):
        if len(parents) >= limit_c:
            out.append(ev.PolicyDecision(scope="study", action="block_study", subject=e, stage=stage,
                                         reason=f"catastrophic: {e} crashed the tool on {len(parents)} different "
                                                f"parent cases ({', '.join(sorted(parents)[:4])})"))
            return out, gates
    broken = sorted(t.case_id for t in mine if (t.failure or {}).get("type") == "eco_integrity" and t.status == "failed")
    if (most := spec.abort.integrity_limit(spec.study.safety_domain)) is not None:
        gates.append(gate("integrity_failures", name, len(broken) < most,
                          {"failed": len(broken), "limit": most, "domain": spec.study.safety_domain}, stage))
        if len(broken) >= most:
            out.append(ev.PolicyDecision(scope="stage", action="abort_stage", subject=name, stage=stage,
                                         reason=f"{len(broken)} trial(s) failed an integrity check ({', '.join(broken[:4])}); "
                                                f"the {spec.study.safety_domain} domain aborts a stage at {most}"))
            return out, gates
    limit = spec.stages[stage].max_wns_regression_ps
    best, parents_best = stage_best_wns(state, stage), parents_best_wns(state, stage)
    if limit is not None and best is not None and parents_best is not None:
        ok = best >= parents_best - limit
        gates.append(gate("stage_wns_regression", name, ok,
                          {"best_wns_ps": best, "parents_best_wns_ps": parents_best, "limit_ps": limit}, stage))
        if not ok:
            out.append(ev.PolicyDecision(scope="stage", action="abort_stage", subject=name, stage=stage,
                                         reason=f"best WNS {best:.1f} ps regressed {parents_best - best:.1f} ps from "
                                                f"the parents' {parents_best:.1f} ps (limit {limit:g} ps)"))
            return out, gates
    if spec.abort.plateau_stages:
        p = plateau(spec, state, stage)
        gates.append(gate("plateau", name, p is None, {"gain_ps": gain(state, stage),
                                                       "min_gain_ps": spec.abort.plateau_min_gain_ps,
                                                       "stages": spec.abort.plateau_stages}, stage))
        if p is not None:
            out.append(ev.PolicyDecision(scope="study", action="plateau", subject=name, stage=stage, reason=p))
    return out, gates


def stage_best_wns(state: StudyState, stage: int) -> float | None:
    vals = [t.metrics["wns_ps"] for t in state.stage_trials(stage)
            if t.status == "done" and isinstance((t.metrics or {}).get("wns_ps"), (int, float))]
    return max(vals) if vals else None


def parents_best_wns(state: StudyState, stage: int) -> float | None:
    vals = [state.trials[p].metrics["wns_ps"] for p in state.stages[stage].parents
            if isinstance((state.trials[p].metrics or {}).get("wns_ps"), (int, float))]
    return max(vals) if vals else None


def gain(state: StudyState, stage: int) -> float | None:
    best, before = stage_best_wns(state, stage), parents_best_wns(state, stage)
    return None if best is None or before is None else best - before


def plateau(spec: StudySpec, state: StudyState, stage: int) -> str | None:
    """P stages in a row along this stage's first-dependency chain without a real WNS gain."""
    p, need = spec.abort.plateau_stages, spec.abort.plateau_min_gain_ps
    if not p:
        return None
    chain, i = [], stage
    deps = spec.stage_deps()
    while len(chain) < p:
        chain.append(i)
        if not deps[i]:
            break
        i = deps[i][0]
    gains = [gain(state, s) for s in chain]
    if len(chain) == p and all(g is not None and g < need for g in gains):
        shown = ", ".join(f"{spec.stages[s].name} {g:+.1f} ps" for s, g in zip(chain, gains))
        return f"plateau: {p} stage(s) without a WNS gain of ≥ {need:g} ps ({shown})"
    return None


def goal_met(spec: StudySpec, state: StudyState, stage: int) -> ev.PolicyDecision | None:
    """The study's goal, checked on a stage's survivors once chosen: met by one of them, the
    study ends early, and the decision says which case met it and what was saved."""
    goal = spec.study.goal
    if not goal:
        return None
    for c in state.stages[stage].survivors:
        m = state.trials[c].metrics or {}
        if all(isinstance(m.get(k), (int, float)) and (m[k] >= v if maximise(k, spec.stage_ranking(stage)) else m[k] <= v)
               for k, v in goal.items()):
            waiting = [st for st in state.stages if st.status == "pending"]
            saved = sum(st.budget for st in waiting)
            met = ", ".join(f"{k} {m[k]:g} {'≥' if maximise(k, spec.stage_ranking(stage)) else '≤'} {v:g}"
                            for k, v in goal.items())
            return ev.PolicyDecision(scope="study", action="goal_met", subject=c, stage=stage,
                                     reason=f"goal met by {c} ({met}) after stage {spec.stages[stage].name}: "
                                            f"{saved} trial(s) of {len(waiting)} stage(s) not run")
    return None


@dataclass
class FlatScan:
    """How far flat_stop has read a stage in plan order.  An ended trial stays ended, so a scan
    goes on from where it stopped: each trial is read once per stage, not once per completion
    (which made a 10,000-trial stage quadratic)."""

    order: list[str]  # the stage's cases in plan order
    k: int = 0  # trials [0, k) are read
    best: float | None = None
    flat: int = 0
    met: bool = False

    @classmethod
    def of(cls, state: StudyState, stage: int) -> FlatScan:
        return cls(sorted(state.stages[stage].cases, key=lambda c: state.trials[c].index))


def flat_stop(spec: StudySpec, state: StudyState, stage: int, scan: FlatScan | None = None) -> tuple[int, str] | None:
    """Where a stage stops early, as a plan index, and why: the first k such that trials [0, k)
    have all ended, one of them met timing (WNS ≥ 0), and the last `stop_when_flat` of them did
    not improve the stage's best on its ranking objective.  Only trials before k count, so the
    answer is the same whatever the concurrency or the order trials finish in.  `scan`: the
    caller's FlatScan of this stage, advanced in place (without one, the stage is read from its
    start)."""
    n = spec.stages[stage].stop_when_flat
    if not n:
        return None
    r = spec.stage_ranking(stage)
    obj = metrics_of(r)[0]
    up = maximise(obj, r)
    tol = r.tolerance.get(obj, 0.0)
    sc = scan or FlatScan.of(state, stage)
    order = sc.order
    while sc.k < len(order):
        t = state.trials[order[sc.k]]
        if t.status not in ("done", "failed"):
            return None
        v = (t.metrics or {}).get(obj) if t.status == "done" else None
        if isinstance(v, (int, float)) and (sc.best is None or (v > sc.best + tol if up else v < sc.best - tol)):
            sc.best, sc.flat = v, 0
        else:
            sc.flat += 1
        sc.met = sc.met or (t.status == "done" and isinstance((t.metrics or {}).get("wns_ps"), (int, float))
                            and t.metrics["wns_ps"] >= 0)
        sc.k += 1
        k, flat = sc.k, sc.flat
        if sc.met and flat >= n and k < len(order):
            return k, (f"timing met and {obj} flat for {flat} trials ({order[k - flat]} to {t.case_id}): the "
                       f"{len(order) - k} later trials of {len(order)} do not run "
                       "(one already running finishes, uncounted)")
    return None


# budget key -> (metric, as a change against the parent)
BUDGETS = {"cells": ("eco_changes", False), "area_added_um2": ("area_um2", True),
           "leakage_added_w": ("power_leakage_w", True)}


def _risk(state: StudyState, t: TrialState) -> dict[str, float]:
    """What one trial spent: cells it changed, area and leakage it added over its parent."""
    m = t.metrics or {}
    p = (state.trials[t.parent].metrics or {}) if t.parent in state.trials else {}
    out = {}
    for key, (metric, delta) in BUDGETS.items():
        v = m.get(metric)
        if isinstance(v, (int, float)) and (not delta or isinstance(p.get(metric), (int, float))):
            out[key] = v - p[metric] if delta else v
    return out


def over_budget(spec: StudySpec, state: StudyState, cases: list[str], stage: int) -> tuple[dict[str, str], Gates]:
    """Cases whose ECO class's risk budget is spent ([rails.eco_class]): by the trial itself, or
    by its lineage's ECOs of that class, summed from the base."""
    budgets = spec.rails.eco_class
    if not budgets:
        return {}, []
    known = catalog(spec)
    out: dict[str, str] = {}
    gates: Gates = []
    for case in sorted(cases):
        t = state.trials[case]
        spent: dict[str, dict[str, float]] = {}  # class -> budget key -> along the lineage
        chain = []
        x: TrialState | None = t
        while x is not None and x.parent is not None:
            chain.append(x)
            x = state.trials.get(x.parent)
        for y in chain:
            cls = known[y.eco].eco_class.value if y.eco in known else None
            for k, v in _risk(state, y).items():
                spent.setdefault(cls or "", {}).setdefault(k, 0.0)
                spent[cls or ""][k] += v
        mine = known[t.eco].eco_class.value if t.eco in known else None
        for cls, b in sorted(budgets.items()):
            checks = [(f"max_{k}", _risk(state, t).get(k), getattr(b, f"max_{k}")) for k in BUDGETS] if cls == mine else []
            checks += [(f"study_max_{k}", spent.get(cls, {}).get(k), getattr(b, f"study_max_{k}")) for k in BUDGETS]
            for name, v, limit in checks:
                if limit is None or v is None:
                    continue
                gates.append(gate(f"budget_{cls}_{name}", case, v <= limit, {"spent": v, "limit": limit}, stage))
                if v > limit and case not in out:
                    out[case] = f"{cls} budget: {name} {v:g} > {limit:g}"
    return out, gates
