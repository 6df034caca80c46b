"""How the console and the headless printer say things: one unit per quantity (ns, mW, µm²),
one word per status, plurals, and what a trial is when no engine runs it any more."""
from __future__ import annotations

from noodle2.engine.fmt import fmt_ns as ns
from noodle2.engine.fmt import plural
from noodle2.engine.journal.state import StageState, StudyState, TrialState
from noodle2.engine.reports.status import best_case
from noodle2.engine.reports.status import stage_best as running_best

__all__ = ["active_stage", "mw", "ns", "plural", "running_best", "stage_counts", "trial_status", "um2"]


def mw(w: float | None) -> str:
    return "—" if w is None else f"{w * 1e3:.3f}"


def um2(a: float | None) -> str:
    return "—" if a is None else f"{a:,.0f}"


def trial_status(t: TrialState, engine_alive: bool) -> str:
    """A trial still marked running when no engine runs the study was cut off: interrupted."""
    if t.status == "running" and not engine_alive:
        return "interrupted"
    return t.status


def stage_counts(s: StudyState, st: StageState) -> dict[str, int]:
    return {k: st.tally.get(k, 0) for k in ("running", "done", "failed", "cancelled", "planned")}


def study_best(s: StudyState) -> tuple[float | None, bool]:
    """The study's best WNS and whether it is post-route: the best survivor the journal records
    (reports/status.best_case), the one `status`, the picker and the report show too.  A stage
    still running shows its own best in the stage table, not here."""
    best = best_case(s)
    if best is None:
        return None, False
    m = best.metrics or {}
    return m.get("wns_ps"), "pre_wns_ps" in m


def active_stage(s: StudyState) -> int:
    """The stage an operator wants to see: the last one running, else the last one started."""
    running = [st.index for st in s.stages if st.status == "running"]
    started = [st.index for st in s.stages if st.status != "pending"]
    return running[-1] if running else (started[-1] if started else 0)
