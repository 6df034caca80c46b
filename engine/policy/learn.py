"""What a study learned about its ECOs and their parameters, for the next study.

Per ECO: how each trial moved the ranking objective from its parent (gain > 0 is better, in the
objective's direction), with its spread; per swept parameter: the value of the best trial and
the range the better third of the trials spans.  From that, a recommendation: a narrowed range
per parameter, and the ECOs to drop (tried enough, never gained).  Pure: it reads the folded
journal and decides nothing the study has not already measured.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from noodle2.engine.fmt import fmt_num
from noodle2.engine.journal.state import StudyState
from noodle2.engine.policy.ranking import maximise, metrics_of
from noodle2.engine.study.models import Ranking

MIN_TRIALS = 3  # fewer than this says nothing about an ECO or a range


@dataclass
class ParamLesson:
    name: str
    tried: tuple[float, float]
    best_value: float
    keep: tuple[float, float] | None  # the range the better third spans; None: too few trials


@dataclass
class EcoLesson:
    eco: str
    trials: int
    failed: int
    gains: list[float]  # per finished trial with a measured parent, in the objective's direction
    params: list[ParamLesson] = field(default_factory=list)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.gains) if self.gains else None

    @property
    def spread(self) -> float | None:
        return statistics.pstdev(self.gains) if len(self.gains) > 1 else None

    @property
    def best(self) -> float | None:
        return max(self.gains) if self.gains else None

    @property
    def drop(self) -> bool:
        """Tried enough and never gained (or failed at least half the time)."""
        return self.trials >= MIN_TRIALS and (not self.gains or self.best <= 0 or self.failed * 2 >= self.trials)


def study_ranking(state: StudyState) -> Ranking:
    """The study's [ranking] as journaled with its spec."""
    try:
        return Ranking.model_validate(state.spec.get("ranking") or {})
    except ValueError:
        return Ranking()


def lessons(state: StudyState, ranking: Ranking) -> tuple[str, list[EcoLesson]]:
    """The objective, and one lesson per ECO that ran (the base case's no-op aside)."""
    obj = metrics_of(ranking)[0]
    sign = 1.0 if maximise(obj, ranking) else -1.0
    rows: dict[str, list[tuple[dict[str, Any], float | None, bool]]] = {}
    for t in state.trials.values():
        if t.stage < 0 or t.status not in ("done", "failed"):
            continue
        parent = state.trials.get(t.parent or "")
        v, pv = (t.metrics or {}).get(obj), ((parent.metrics or {}) if parent else {}).get(obj)
        gain = sign * (v - pv) if isinstance(v, (int, float)) and isinstance(pv, (int, float)) else None
        rows.setdefault(t.eco, []).append((t.params, gain if t.status == "done" else None, t.status == "failed"))
    out = []
    for eco, got in sorted(rows.items()):
        e = EcoLesson(eco, len(got), sum(f for _, _, f in got), [g for _, g, _ in got if g is not None])
        scored = sorted(((g, p) for p, g, _ in got if g is not None), key=lambda x: -x[0])
        names = sorted({k for p, _, _ in got for k, v in p.items() if isinstance(v, (int, float))})
        for k in names:
            vals = [p[k] for _, p in scored if isinstance(p.get(k), (int, float))]
            if len(set(vals)) < 2:
                continue
            top = vals[:max(MIN_TRIALS, len(vals) // 3)]  # the better third, never fewer than 3 trials
            enough = len(vals) >= 2 * MIN_TRIALS and scored[0][0] > 0
            e.params.append(ParamLesson(k, (min(vals), max(vals)), vals[0], (min(top), max(top)) if enough else None))
        out.append(e)
    return obj, out


def recommendations(obj: str, got: list[EcoLesson]) -> list[str]:
    """The lessons as sentences for the next study."""
    out = []
    for e in got:
        if e.drop:
            why = "failed in half its trials or more" if e.failed * 2 >= e.trials else "never improved on its parent"
            out.append(f"drop {e.eco}: {why} ({e.trials} trials)")
            continue
        for p in e.params:
            if p.keep is not None and p.keep != p.tried:
                out.append(f"{e.eco}.{p.name}: narrow {fmt_num(p.tried[0])}–{fmt_num(p.tried[1])} to "
                           f"{fmt_num(p.keep[0])}–{fmt_num(p.keep[1])} (best at {fmt_num(p.best_value)})")
    return out or [f"nothing to change: no ECO or range stands out on {obj}"]
