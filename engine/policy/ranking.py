"""Ranking and survivor selection.  Ties always break by case id, so order of completion
never matters."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from noodle2.engine.catalog.ecos import ROUTE_MODES
from noodle2.engine.catalog.metrics import post_route_only
from noodle2.engine.journal.state import StudyState
from noodle2.engine.study.models import Ranking, maximised

Metrics = dict[str, Any]


@dataclass(frozen=True)
class Candidate:
    case_id: str
    metrics: Metrics
    parent_metrics: Metrics | None = None
    key: str = ""  # what the case produced (its netlist hash): two equal keys are one design


@dataclass(frozen=True)
class Selection:
    survivors: list[str]
    ranking: list[str]
    excluded: dict[str, str]
    front: list[str]
    gates: list[dict[str, Any]]


def study_best(s: StudyState, r: Ranking, finishing: int | None = None) -> str | None:
    """The study's answer: the best survivor of any finished stage (and of `finishing`, the
    stage being closed), by the study's ranking.  Once a stage has placed and routed, only
    routed survivors count: a pre-route number is not comparable with a post-route one, and
    the post-route one is the truth.  The engine journals it with each finished stage."""
    done = [st for st in s.stages if st.status == "done" or st.index == finishing]
    routed = [st for st in done if st.mode in ROUTE_MODES]
    survivors = sorted({c for st in (routed or done) for c in st.survivors})
    if not survivors:
        return None
    base = s.base()
    order, _ = rank([Candidate(c, s.trials[c].metrics or {}) for c in survivors], r,
                    base.metrics if base else None, need=1)
    return order[0]


def improves(child: Metrics, parent: Metrics, r: Ranking) -> bool:
    """Did the child gain on the study's ranking objective over its parent?  single: the
    objective; weighted: the weighted sum; lexicographic: the objectives in order (with their
    tolerances); pareto: the child dominates the parent."""
    child = like_parent(child, parent)
    ms = metrics_of(r)
    a = [_value(Candidate("c", child), m, r) for m in ms]
    b = [_value(Candidate("p", parent), m, r) for m in ms]
    if r.kind == "single":
        return a[0] > b[0]
    if r.kind == "weighted":
        return sum(w * x for w, x in zip(r.weights.values(), a)) > sum(w * x for w, x in zip(r.weights.values(), b))
    if r.kind == "lexicographic":
        for m, x, y in zip(ms, a, b):
            tol = r.tolerance.get(m, 0.0)
            if x > y + tol:
                return True
            if x < y - tol:
                return False
        return False
    return _dominates(tuple(a), tuple(b))


def maximise(metric: str, r: Ranking) -> bool:
    if metric in r.directions:
        return r.directions[metric] == "max"
    return bool(maximised(metric))


def metrics_of(r: Ranking) -> list[str]:
    if r.kind == "single":
        return [r.objective]
    return list(r.weights) if r.kind == "weighted" else list(r.objectives)


def _value(c: Candidate, m: str, r: Ranking) -> float:
    """Oriented so that larger is better; a missing metric is the worst value."""
    v = c.metrics.get(m)
    if not isinstance(v, (int, float)) or math.isnan(v):
        return -math.inf
    return float(v) if maximise(m, r) else -float(v)


def rank(cands: list[Candidate], r: Ranking, base: Metrics | None = None, need: int | None = None) -> tuple[list[str], list[str]]:
    """Best first.  Returns (ranking, pareto front).  `need` bounds the lexicographic selection."""
    cands = sorted(cands, key=lambda c: c.case_id)
    if r.kind == "single":
        order = sorted(cands, key=lambda c: (-_value(c, r.objective, r), c.case_id))
        return [c.case_id for c in order], []
    if r.kind == "weighted":
        def score(c: Candidate) -> float:
            total = 0.0
            for m, w in r.weights.items():
                v = _value(c, m, r)
                scale = abs(float(base[m])) if (r.normalise == "base" and base and base.get(m)) else 1.0
                total += w * v / scale
            return total
        order = sorted(cands, key=lambda c: (-score(c), c.case_id))
        return [c.case_id for c in order], []
    if r.kind == "lexicographic":
        return _lexicographic(cands, r, need if need is not None else len(cands)), []
    return _pareto(cands, r)


def _lexicographic(cands: list[Candidate], r: Ranking, need: int) -> list[str]:
    """Pick winners one at a time: keep those within tolerance of the best on each metric in
    turn, then take the best on the last metric.  The rest follow in strict order."""
    ms = r.objectives
    pool = list(cands)
    out: list[str] = []
    while pool and len(out) < need:
        s = pool
        for m in ms:
            best = max(_value(c, m, r) for c in s)
            tol = r.tolerance.get(m, 0.0)
            s = [c for c in s if _value(c, m, r) >= best - tol]
        win = min(s, key=lambda c: (tuple(-_value(c, m, r) for m in reversed(ms)), c.case_id))
        out.append(win.case_id)
        pool.remove(win)
    rest = sorted(pool, key=lambda c: (tuple(-_value(c, m, r) for m in ms), c.case_id))
    return out + [c.case_id for c in rest]


def _dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def non_dominated_fronts(points: dict[str, tuple[float, ...]]) -> list[list[str]]:
    """Fronts of non-dominated points (larger is better in every coordinate), each sorted by id.

    Efficient non-dominated sort (Zhang et al. 2015): visit points best-first in lexicographic
    order, so a point can only be dominated by one visited before it, and place each in the
    first front none of whose members dominates it.  Two objectives need only each front's last
    member, and those fronts are ordered, so a binary search places a point: O(N log N)."""
    order = sorted(points, key=lambda i: (tuple(-v for v in points[i]), i))
    if not order:
        return []
    fronts: list[list[str]] = []
    if len(points[order[0]]) == 2:
        for i in order:
            p = points[i]
            lo, hi = 0, len(fronts)
            while lo < hi:  # first front whose last member does not dominate p
                mid = (lo + hi) // 2
                if _dominates(points[fronts[mid][-1]], p):
                    lo = mid + 1
                else:
                    hi = mid
            if lo == len(fronts):
                fronts.append([])
            fronts[lo].append(i)
    else:
        for i in order:
            p = points[i]
            k = 0
            while k < len(fronts) and any(_dominates(points[j], p) for j in reversed(fronts[k])):
                k += 1
            if k == len(fronts):
                fronts.append([])
            fronts[k].append(i)
    return [sorted(f) for f in fronts]


def crowding(front: list[str], points: dict[str, tuple[float, ...]]) -> dict[str, float]:
    """NSGA-II crowding distance.  Identical points share one distance (the first case id keeps
    it, the others get 0), so duplicates never take two survivor slots for one design point."""
    dist = {i: 0.0 for i in front}
    reps: dict[tuple[float, ...], str] = {}
    for i in sorted(front):
        reps.setdefault(points[i], i)
    uniq = sorted(reps.values())
    if not uniq:
        return dist
    for k in range(len(points[uniq[0]])):
        order = sorted(uniq, key=lambda i: (points[i][k], i))
        lo, hi = points[order[0]][k], points[order[-1]][k]
        dist[order[0]] = dist[order[-1]] = math.inf
        if hi == lo or not math.isfinite(hi - lo):
            continue
        for a, b, c in zip(order, order[1:], order[2:]):
            dist[b] += (points[c][k] - points[a][k]) / (hi - lo)
    return dist


def _pareto(cands: list[Candidate], r: Ranking) -> tuple[list[str], list[str]]:
    points = {c.case_id: tuple(_value(c, m, r) for m in r.objectives) for c in cands}
    fronts = non_dominated_fronts(points)
    order: list[str] = []
    for f in fronts:
        d = crowding(f, points)
        order += sorted(f, key=lambda i: (-d[i], i))
    return order, (fronts[0] if fronts else [])


def select_survivors(cands: list[Candidate], r: Ranking, count: int, base: Metrics | None,
                     max_wns_regression_ps: float | None = None, stage: int | None = None,
                     limits: dict[str, tuple[float | None, float | None]] | None = None) -> Selection:
    """Survivors come only from trials that pass the rails; each rail check is a gate.
    `limits`: metric -> (min, max) a survivor must keep; a trial without the metric is not held
    to it (a pre-route trial has no hot_ratio)."""
    from noodle2.engine.policy.trace import gate

    excluded: dict[str, str] = {}
    gates: list[dict[str, Any]] = []
    ok: list[Candidate] = []
    for c in sorted(cands, key=lambda c: c.case_id):
        pw = (c.parent_metrics or {}).get("wns_ps")
        w = like_parent(c.metrics, c.parent_metrics or {}).get("wns_ps")
        if max_wns_regression_ps is not None and isinstance(pw, (int, float)) and isinstance(w, (int, float)):
            passed = w >= pw - max_wns_regression_ps
            gates.append(gate("rail_wns_vs_parent", c.case_id, passed,
                              {"wns_ps": w, "parent_wns_ps": pw, "rail_ps": max_wns_regression_ps}, stage))
            if not passed:
                excluded[c.case_id] = (f"wns_ps {w:.1f} is {pw - w:.1f} ps worse than parent "
                                       f"(rail {max_wns_regression_ps:g} ps)")
                continue
        broken = None
        for m, (lo, hi) in sorted((limits or {}).items()):
            v = c.metrics.get(m)
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            passed = (lo is None or v >= lo) and (hi is None or v <= hi)
            gates.append(gate(f"rail_{m}", c.case_id, passed, {m: v, "min": lo, "max": hi}, stage))
            if not passed and broken is None:
                broken = f"{m} = {v:g} is above the rail max {hi:g}" if hi is not None and v > hi else \
                    f"{m} = {v:g} is below the rail min {lo:g}"
        if broken is not None:
            excluded[c.case_id] = broken
            continue
        ok.append(c)
    ranking, front = rank(ok, r, base, need=count)
    keys = {c.case_id: c.key for c in ok}
    survivors: list[str] = []
    taken: dict[str, str] = {}
    for c in ranking:  # never two survivors with the same netlist
        if len(survivors) == count:
            break
        k = keys[c]
        if k and k in taken:
            excluded[c] = f"same result as {taken[k]}"
            continue
        if k:
            taken[k] = c
        survivors.append(c)
    return Selection(survivors, ranking, excluded, front, gates)


def pre_route(m: Metrics) -> Metrics:
    """A routed trial's metrics as they were before place and route (pre_<name> kept by the
    route modes), without what only routing measures."""
    out = {k: v for k, v in m.items() if not k.startswith("pre_") and not post_route_only(k)}
    out.update({k[4:]: v for k, v in m.items() if k.startswith("pre_")})
    return out


def like_parent(child: Metrics, parent: Metrics) -> Metrics:
    """A routed child of an unrouted parent is compared on its pre-route numbers: like with like."""
    if any(k.startswith("pre_") for k in child) and not any(k.startswith("pre_") for k in parent):
        return pre_route(child)
    return child


def rank_agreement(cands: list[Candidate], post: list[str], r: Ranking, base: Metrics | None) -> dict[str, Any] | None:
    """How well ranking on pre-route numbers predicted the post-route ranking `post`: Spearman's
    rank correlation over the ranked trials and the post-route winner's pre-route place."""
    by_id = {c.case_id: c for c in cands}
    ranked = [c for c in post if c in by_id and any(k.startswith("pre_") for k in by_id[c].metrics)]
    if not ranked:
        return None
    pre, _ = rank([Candidate(c, pre_route(by_id[c].metrics)) for c in ranked], r, base)
    n = len(ranked)
    spearman = None
    values = {tuple(pre_route(by_id[c].metrics).get(m) for m in metrics_of(r)) for c in ranked}
    if n >= 2 and len(values) == 1:  # one netlist placed differently: nothing to predict before routing
        return {"pre_ranking": pre, "post_ranking": ranked, "spearman": None, "winner_pre_rank": 0}
    if n >= 2:
        where = {c: i for i, c in enumerate(pre)}
        d2 = sum((i - where[c]) ** 2 for i, c in enumerate(ranked))
        spearman = round(1 - 6 * d2 / (n * (n * n - 1)), 4)
    return {"pre_ranking": pre, "post_ranking": ranked, "spearman": spearman,
            "winner_pre_rank": pre.index(ranked[0]) + 1}


def rail_limits(r: Any) -> dict[str, tuple[float | None, float | None]]:
    """[rails] max/min as metric -> (min, max)."""
    return {m: (r.min.get(m), r.max.get(m)) for m in sorted(set(r.max) | set(r.min))}
