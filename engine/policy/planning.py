"""Which trials a stage runs: ECO, parameters and parent for each case id, fixed in advance.

The plan depends only on the spec, the stage's parents (in rank order) and the ECO order chosen
by the priors, so it is the same whatever the concurrency or completion order.
"""
from __future__ import annotations

import itertools
import random
from typing import Any

from noodle2.engine.catalog.ecos import ParamSpec, catalog
from noodle2.engine.study.models import ParamSetting, StudySpec


def case_id(base: str, stage: int, index: int) -> str:
    return f"{base}_{stage}_{index}"


def plan_stage(spec: StudySpec, stage: int, parents: list[str], ecos: list[str],
               design: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """`ecos`: the stage's usable ECOs in budget order (after containment and priors); `design`:
    the base case's journaled metrics, which bound a parameter with a span (a slack margin is
    drawn from the slacks the design has, not from the catalog's whole legal range)."""
    st = spec.stages[stage]
    if not ecos or not parents:
        return []
    rng = random.Random(f"{spec.study.seed}:{stage}:{st.name}")
    known = catalog(spec)
    grids = {e: _grid(known[e].params, st.params.get(e, {})) for e in ecos} if st.sweep == "grid" else {}
    plan: list[dict[str, Any]] = []
    seen: set[tuple] = set()
    # Each stage starts one further along the ECO list: in a chain of small stages every ECO
    # gets its turn, not only the first few.
    offset = stage * st.trials
    for i in range(st.trials):
        eco = ecos[(i + offset) % len(ecos)]
        k = i // len(ecos)
        if st.sweep == "grid":
            grid = grids[eco]
            params = grid[k % len(grid)]
            parent = parents[(k // len(grid)) % len(parents)]
        else:
            parent = parents[k % len(parents)]
            for _ in range(20):  # avoid repeating an identical trial when the space allows
                params = {p.name: _sample(p, st.params.get(eco, {}).get(p.name), rng, design or {})
                          for p in known[eco].params}
                if (parent, eco, tuple(sorted(params.items()))) not in seen:
                    break
        seen.add((parent, eco, tuple(sorted(params.items()))))
        plan.append({"case_id": case_id(spec.base_case, stage, i), "index": i, "parent": parent,
                     "eco": eco, "params": params})
    return plan


def _sample(p: ParamSpec, setting: ParamSetting | None, rng: random.Random, design: dict[str, Any]) -> float:
    if setting is None:
        lo, hi = span(p, design)
    elif isinstance(setting, dict):
        lo, hi = setting["min"], setting["max"]
    elif isinstance(setting, list):
        return _typed(p, rng.choice(setting))
    else:
        return _typed(p, setting)
    return rng.randint(int(lo), int(hi)) if p.kind is int else round(rng.uniform(lo, hi), 3)


def span(p: ParamSpec, design: dict[str, Any]) -> tuple[float, float]:
    """The range an unset parameter is sampled from: the legal range, cut to the design's span."""
    v = design.get(p.span) if p.span else None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return p.lo, min(p.hi, max(p.lo, float(v)))
    return p.lo, p.hi


def _typed(p: ParamSpec, v: float) -> float:
    return int(v) if p.kind is int else float(v)


def _grid(params: tuple[ParamSpec, ...], settings: dict[str, ParamSetting]) -> list[dict[str, float]]:
    axes = []
    for p in params:
        s = settings.get(p.name, p.default)
        if isinstance(s, dict):
            lo, hi = s["min"], s["max"]
            vals = list(range(int(lo), int(hi) + 1)) if p.kind is int else [lo + (hi - lo) * j / 4 for j in range(5)]
        else:
            vals = s if isinstance(s, list) else [s]
        axes.append([_typed(p, v) for v in vals])
    return [dict(zip([p.name for p in params], combo)) for combo in itertools.product(*axes)] or [{}]
