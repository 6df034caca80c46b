"""The study view's one-line header: name and status, trials, workers, elapsed, ETA, cluster,
safety domain, and WNS base → best.  At 80 columns it keeps the essentials in short words."""
from __future__ import annotations

from textual.widgets import Label

from noodle2.console.view import ns, plural, study_best
from noodle2.engine.fmt import fmt_local
from noodle2.engine.journal.state import TERMINAL, StudyState
from noodle2.engine.reports.status import effective_status


def clock_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(max(seconds, 0))
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}"


def _eta(s: StudyState) -> float | None:
    """Trials left in each unfinished stage × the mean wall time of finished trials of that
    stage's mode (a route trial takes seconds where an sta trial takes tenths) ÷ workers.  None
    until every mode still to run has a finished trial to go by."""
    walls: dict[str, list[float]] = {}
    for t in s.trials.values():
        if t.stage >= 0 and t.status == "done" and (t.resources or {}).get("wall_s"):
            walls.setdefault(s.stages[t.stage].mode, []).append(t.resources["wall_s"])
    work = 0.0
    for st in s.stages:
        left = st.budget - sum(s.trials[c].status in TERMINAL for c in st.cases)
        if st.status in ("done", "aborted", "skipped") or left <= 0:
            continue
        if st.mode not in walls:
            return None
        work += left * sum(walls[st.mode]) / len(walls[st.mode])
    return work / max(s.max_parallel, 1)


class StudyHeader(Label):
    def __init__(self, **kw) -> None:
        super().__init__("", markup=False, **kw)

    @staticmethod
    def elapsed(s: StudyState, alive: bool, now: float) -> float | None:
        """Since the study started: to now while its engine runs, else to its last event."""
        if not (s.started_at and s.last_event_at):
            return None
        return (now if s.status == "running" and alive else s.last_event_at) - s.started_at

    @staticmethod
    def text(s: StudyState, name: str, engine_pid: int | None, now: float, width: int,
             elapsed: float | None = None) -> str:
        """`elapsed`: what the caller shows (a view keeps it from going back when the engine dies
        between two ticks); computed when not given."""
        alive = engine_pid is not None
        status = effective_status(s, engine_pid)
        since = s.paused_since() if status == "running" else None
        if since is not None:
            status = f"paused since {fmt_local(since, seconds=True, date=False)}"
        busy = s.busy() if alive else 0
        elapsed = StudyHeader.elapsed(s, alive, now) if elapsed is None else elapsed
        done, total = s.counts()
        eta = _eta(s) if status == "running" else None
        base = s.base()
        bw = (base.metrics or {}).get("wns_ps") if base else None
        best, routed = study_best(s)
        wns = f"WNS {ns(bw)}→{ns(best)}" + (" routed" if routed else "")
        parts = [f" {s.name or name} [{status}]", f"{done}/{plural(total, 'trial')}",
                 f"workers {busy}/{s.max_parallel}", f"elapsed {clock_text(elapsed)}", f"{wns} ns"]
        c = s.cluster or {}
        ray = f"ray {c.get('cpus_busy', 0):g}/{c.get('cpus', 0):g} CPU" if s.cluster and alive else ""
        optional = [f"ETA {clock_text(eta)}" if eta is not None else "", ray, s.safety_domain or ""]
        text = " · ".join(parts[:4] + [o for o in optional if o] + parts[4:])
        if len(text) > width - 1:  # 80 columns: the essentials, shortest words
            text = " · ".join([parts[0], f"{done}/{total}", f"w {busy}/{s.max_parallel}"] + [ray] * bool(ray)
                              + [clock_text(elapsed), wns])
        return text

