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


def plan_stage(spec: StudySpec, stage: int, parents: list[str], ecos: list[str]) -> list[dict[str, Any]]:
    """`ecos`: the stage's usable ECOs in budget order (after containment and priors)."""
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
                params = {p.name: _sample(p, st.params.get(eco, {}).get(p.name), rng) for p in known[eco].params}
                if (parent, eco, tuple(sorted(params.items()))) not in seen:
                    break
        seen.add((parent, eco, tuple(sorted(params.items()))))
        plan.append({"case_id": case_id(spec.base_case, stage, i), "index": i, "parent": parent,
                     "eco": eco, "params": params})
    return plan


def _sample(p: ParamSpec, setting: ParamSetting | None, rng: random.Random) -> float:
    if setting is None:
        lo, hi = p.lo, p.hi
    elif isinstance(setting, dict):
        lo, hi = setting["min"], setting["max"]
    elif isinstance(setting, list):
        return _typed(p, rng.choice(setting))
    else:
        return _typed(p, setting)
    return rng.randint(int(lo), int(hi)) if p.kind is int else round(rng.uniform(lo, hi), 3)


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
