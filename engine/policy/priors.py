"""ECO effectiveness within a study and the prior each ECO earns from it.

The `noop` control is never rated and never skipped: it measures the parent, not an ECO.

Prior labels (thresholds in [priors] of the study file):
  unknown     fewer than `min_trials` trials
  suspicious  failure rate ≥ `suspicious_failure_rate`, or no trial ever gained
  trusted     share of gaining trials ≥ `trusted_success_rate`
  mixed       anything else

A trial gains when it improves the study's ranking objective over its parent (see
ranking.improves): with objective = wns_ps, a TNS-only gain is not a success.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable

from noodle2.engine.fmt import fmt_metric
from noodle2.engine.journal.state import StudyState, TrialState
from noodle2.engine.policy.failures import charged
from noodle2.engine.study.models import Priors, Ranking

RANK = {"trusted": 0, "mixed": 1, "unknown": 2, "suspicious": 3}
CONTROL = "noop"


@dataclass
class Effect:
    eco: str
    trials: int = 0
    successes: int = 0  # finished and gained on the ranking objective over the parent
    failures: int = 0
    sum_dwns: float = 0.0
    sum_dtns: float = 0.0
    measured: int = 0  # finished trials with both metrics on both sides
    best_dwns: float | None = None
    best_dtns: float | None = None
    prior: str = "unknown"

    @property
    def mean_dwns(self) -> float | None:
        return self.sum_dwns / self.measured if self.measured else None

    @property
    def mean_dtns(self) -> float | None:
        return self.sum_dtns / self.measured if self.measured else None

    def row(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(mean_dwns=self.mean_dwns, mean_dtns=self.mean_dtns)
        return d


def effectiveness(state: StudyState, trials: Iterable[TrialState], cfg: Priors,
                  imported: dict[str, dict[str, Any]] | None = None, ranking: Ranking | None = None) -> dict[str, Effect]:
    from noodle2.engine.policy.ranking import improves

    ranking = ranking or Ranking()
    out: dict[str, Effect] = {}
    for eco, row in (imported or {}).items():
        if eco == CONTROL:
            continue
        e = out.setdefault(eco, Effect(eco))
        for k in ("trials", "successes", "failures", "sum_dwns", "sum_dtns", "measured"):
            setattr(e, k, getattr(e, k) + row.get(k, 0))
    for t in sorted(trials, key=lambda x: x.case_id):
        if t.stage < 0 or t.status not in ("done", "failed") or t.eco == CONTROL or not charged(t.failure):
            continue
        e = out.setdefault(t.eco, Effect(t.eco))
        e.trials += 1
        if t.status == "failed":
            e.failures += 1
            continue
        parent = state.trials.get(t.parent or "")
        pm, m = (parent.metrics if parent else None) or {}, t.metrics or {}
        if all(isinstance(d.get(k), (int, float)) for d in (pm, m) for k in ("wns_ps", "tns_ps")):
            dw, dt = m["wns_ps"] - pm["wns_ps"], m["tns_ps"] - pm["tns_ps"]
            e.measured += 1
            e.sum_dwns += dw
            e.sum_dtns += dt
            e.best_dwns = dw if e.best_dwns is None else max(e.best_dwns, dw)
            e.best_dtns = dt if e.best_dtns is None else max(e.best_dtns, dt)
            e.successes += improves(m, pm, ranking)
    for e in out.values():
        e.prior = label(e, cfg)
    return out


def label(e: Effect, cfg: Priors) -> str:
    if e.trials < cfg.min_trials:
        return "unknown"
    if e.failures / e.trials >= cfg.suspicious_failure_rate or e.successes == 0:
        return "suspicious"
    return "trusted" if e.successes / e.trials >= cfg.trusted_success_rate else "mixed"


def order(ecos: list[str], effects: dict[str, Effect], domain: str) -> tuple[list[str], dict[str, str]]:
    """Budget order and skipped ECOs.  Sandbox keeps the file's order and skips nothing."""
    if domain == "sandbox":
        return list(ecos), {}
    label_of = {e: effects[e].prior if e in effects else "unknown" for e in ecos}
    skipped = {e: _why(effects[e]) for e in ecos if label_of[e] == "suspicious" and e != CONTROL}
    kept = sorted((e for e in ecos if e not in skipped),
                  key=lambda e: -1 if e == CONTROL else RANK[label_of[e]])  # stable: file order
    return kept, skipped


def _why(e: Effect) -> str:
    return (f"prior suspicious: {e.failures}/{e.trials} failed, {e.successes} improved"
            + (f", mean ΔWNS {fmt_metric('wns_ps', e.mean_dwns, sign=True)}" if e.mean_dwns is not None else ""))


def leaderboard(effects: dict[str, Effect]) -> list[dict[str, Any]]:
    """ECOs ranked by effectiveness: prior, then mean ΔWNS, then name."""
    rows = [e.row() for e in effects.values()]
    return sorted(rows, key=lambda r: (RANK[r["prior"]], -(r["mean_dwns"] if r["mean_dwns"] is not None else -1e18),
                                       r["eco"]))


def leaderboard_md(rows: list[dict[str, Any]]) -> str:
    out = ["| # | ECO | prior | trials | ok↑ | failed | mean ΔWNS ns | best ΔWNS ns | mean ΔTNS ns |",
           "|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        f = (lambda v: fmt_metric("wns_ps", v, sign=True, unit=False))
        out.append(f"| {i} | {r['eco']} | {r['prior']} | {r['trials']} | {r['successes']} | {r['failures']} | "
                   f"{f(r['mean_dwns'])} | {f(r['best_dwns'])} | {f(r['mean_dtns'])} |")
    return "\n".join(out) + "\n"
