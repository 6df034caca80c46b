"""Report plots with matplotlib (an optional extra): axes with units, legends, and markers and
line styles that still read in greyscale.  Each function writes one PNG and returns its caption;
`render_all` returns why plots were skipped when matplotlib is missing."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from noodle2.engine.fmt import metric_axis, metric_unit
from noodle2.engine.fsutil import save_figure
from noodle2.engine.journal.state import StudyState

MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">"]
STYLES = ["-", "--", "-.", ":"]
SKIPPED = "visualization_unavailable: matplotlib is not installed (pip install 'noodle2[plots]')"


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.grid": True, "grid.alpha": 0.3, "figure.dpi": 110})
    return plt


NS = metric_unit("wns_ps")[2]  # slacks are stored in ps and drawn in ns, as every view shows them


def _integer_ticks() -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _done(s: StudyState) -> list:
    return [t for t in sorted(s.trials.values(), key=lambda t: (t.stage, t.index))
            if t.stage >= 0 and t.status == "done" and isinstance((t.metrics or {}).get("wns_ps"), (int, float))]


def trajectory(s: StudyState, out: Path) -> str:
    """WNS and TNS of every finished trial in order, by stage, with the running best."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    trials = _done(s)
    best_w = best_t = None
    bw, bt = [], []
    for k, t in enumerate(trials):
        w, tn = t.metrics["wns_ps"] * NS, (t.metrics.get("tns_ps") or 0) * NS
        best_w = w if best_w is None else max(best_w, w)
        best_t = tn if best_t is None else max(best_t, tn)
        bw.append(best_w)
        bt.append(best_t)
    for i, st in enumerate(s.stages):
        xs = [k for k, t in enumerate(trials) if t.stage == i]
        if not xs:
            continue
        m = MARKERS[i % len(MARKERS)]
        a1.scatter(xs, [trials[k].metrics["wns_ps"] * NS for k in xs], marker=m, s=16, label=st.name)
        a2.scatter(xs, [(trials[k].metrics.get("tns_ps") or 0) * NS for k in xs], marker=m, s=16, label=st.name)
    a1.plot(range(len(bw)), bw, "k-", lw=1.2, label="best so far")
    a2.plot(range(len(bt)), bt, "k-", lw=1.2, label="best so far")
    base = (s.base().metrics or {}) if s.base() else {}
    if "wns_ps" in base:
        a1.axhline(base["wns_ps"] * NS, color="0.4", ls="--", lw=1, label="base")
    if "tns_ps" in base:
        a2.axhline(base["tns_ps"] * NS, color="0.4", ls="--", lw=1, label="base")
    a1.set_ylabel(metric_axis("wns_ps"))
    a2.set_ylabel(metric_axis("tns_ps"))
    a2.set_xlabel("finished trial (in stage order)")
    a2.xaxis.set_major_locator(_integer_ticks())
    a1.set_title(f"{s.name}: WNS and TNS over the trials")
    a1.legend(fontsize=7, ncol=3, loc="best")
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)
    return "WNS and TNS of every finished trial, by stage, with the best so far and the base (dashed)"


def progression(s: StudyState, out: Path) -> str:
    """Each stage's best WNS and TNS against the base."""
    from noodle2.engine.reports.status import stage_best

    plt = _plt()
    fig, a1 = plt.subplots(figsize=(7, 3.4))
    names = [st.name for st in s.stages]
    w = [stage_best(s, st, "wns_ps") for st in s.stages]
    t = [stage_best(s, st, "tns_ps") for st in s.stages]
    xs = [i for i, v in enumerate(w) if v is not None]
    a1.plot(xs, [w[i] * NS for i in xs], "o-", color="0.1", label="best " + metric_axis("wns_ps"))
    a1.set_ylabel("best " + metric_axis("wns_ps"))
    a2 = a1.twinx()
    ts = [i for i in xs if t[i] is not None]
    a2.plot(ts, [t[i] * NS for i in ts], "s--", color="0.5", label="best " + metric_axis("tns_ps"))
    a2.set_ylabel("best " + metric_axis("tns_ps"))
    a2.grid(False)
    a1.set_xticks(range(len(names)))
    a1.set_xticklabels(names, rotation=30 if len(names) > 6 else 0, ha="right" if len(names) > 6 else "center")
    a1.set_xlabel("stage")
    a1.set_title(f"{s.name}: stage progression")
    lines = a1.get_lines() + a2.get_lines()
    a1.legend(lines, [ln.get_label() for ln in lines], fontsize=7, loc="lower right")
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)
    return "each stage's best WNS (solid) and TNS (dashed)"


def objectives(s: StudyState, most: int = 2) -> list[str]:
    """The metrics the study ranks on (its own Pareto or lexicographic objectives), else WNS and TNS."""
    r = s.spec.get("ranking") or {}
    objs = [o for o in (r.get("objectives") or list(r.get("weights") or {})) if isinstance(o, str)]
    if len(objs) < 2:
        objs = [r.get("objective") or "wns_ps"] if r.get("kind", "single") == "single" else objs
        objs += [m for m in ("wns_ps", "tns_ps") if m not in objs]
    return objs[:most]


def pairwise(s: StudyState, out: Path) -> str:
    """Three or more objectives: every pair on its own axes, the non-dominated front (on all of
    them) starred in each."""
    from noodle2.engine.policy.ranking import Candidate, rank
    from noodle2.engine.study.models import Ranking

    objs = objectives(s, most=6)
    plt = _plt()
    trials = [t for t in _done(s) if all(isinstance(t.metrics.get(m), (int, float)) for m in objs)]
    directions = {k: v for k, v in ((s.spec.get("ranking") or {}).get("directions") or {}).items() if k in objs}
    _, front = rank([Candidate(t.case_id, t.metrics) for t in trials], Ranking(kind="pareto", objectives=objs,
                                                                                 directions=directions)) \
        if trials else ([], [])
    n = len(objs)
    fig, axes = plt.subplots(n - 1, n - 1, figsize=(2.6 * (n - 1) + 1, 2.4 * (n - 1) + 0.8), squeeze=False)
    for i in range(1, n):
        for j in range(n - 1):
            ax = axes[i - 1][j]
            if j >= i:
                ax.axis("off")
                continue
            fx, fy = metric_unit(objs[j])[2], metric_unit(objs[i])[2]
            for on, style in ((False, {"marker": "o", "s": 10, "facecolors": "none", "edgecolors": "0.55"}),
                              (True, {"marker": "*", "s": 50, "color": "k"})):
                pts = [t for t in trials if (t.case_id in front) == on]
                ax.scatter([t.metrics[objs[j]] * fx for t in pts], [t.metrics[objs[i]] * fy for t in pts],
                           label="Pareto front" if on else "trials", **style)
            if i == n - 1:
                ax.set_xlabel(metric_axis(objs[j]), fontsize=8)
            if j == 0:
                ax.set_ylabel(metric_axis(objs[i]), fontsize=8)
    axes[0][0].legend(fontsize=7, loc="best")
    fig.suptitle(f"{s.name}: {', '.join(metric_unit(m)[0] for m in objs)}, pair by pair", fontsize=9)
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)
    return (f"{len(trials)} trials on each pair of the {n} objectives; stars: the non-dominated front on all of them "
            f"({len([t for t in trials if t.case_id in front])})")


def pareto(s: StudyState, out: Path, x: str | None = None, y: str | None = None) -> str:
    """Every finished trial on the study's two first objectives; the non-dominated front highlighted."""
    from noodle2.engine.policy.ranking import Candidate, rank
    from noodle2.engine.study.models import Ranking

    x, y = (x, y) if x and y else objectives(s)
    plt = _plt()
    trials = [t for t in _done(s) if all(isinstance(t.metrics.get(m), (int, float)) for m in (x, y))]
    directions = {k: v for k, v in ((s.spec.get("ranking") or {}).get("directions") or {}).items() if k in (x, y)}
    r = Ranking(kind="pareto", objectives=[x, y], directions=directions)
    _, front = rank([Candidate(t.case_id, t.metrics) for t in trials], r) if trials else ([], [])
    on = [t for t in trials if t.case_id in front]
    off = [t for t in trials if t.case_id not in front]
    fx, fy = metric_unit(x)[2], metric_unit(y)[2]
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.scatter([t.metrics[x] * fx for t in off], [t.metrics[y] * fy for t in off], marker="o", s=14,
               facecolors="none", edgecolors="0.5", label="trials")
    pts = sorted((t.metrics[x] * fx, t.metrics[y] * fy) for t in on)
    ax.plot([p[0] for p in pts], [p[1] for p in pts], "k*-", ms=9, lw=1, label="Pareto front")
    ax.set_xlabel(metric_axis(x))
    ax.set_ylabel(metric_axis(y))
    ax.set_title(f"{s.name}: {metric_unit(x)[0]} against {metric_unit(y)[0]}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)
    return (f"{len(trials)} trials on {metric_axis(x)} and {metric_axis(y)}; "
            f"stars: the non-dominated front ({len(on)})")


def eco_success(s: StudyState, out: Path) -> str:
    """Per ECO: trials that improved on their parent, that did not, that failed."""
    plt = _plt()
    rows = [r for r in s.eco_stats if r["trials"]]  # the leaderboard as journaled at the study's end
    names = [r["eco"] for r in rows]
    ok = [r["successes"] for r in rows]
    failed = [r["failures"] for r in rows]
    other = [r["trials"] - r["successes"] - r["failures"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(rows) + 1.6))
    ys = range(len(rows))
    ax.barh(ys, ok, color="0.15", label="improved on its parent")
    ax.barh(ys, other, left=ok, color="0.6", hatch="//", label="no gain")
    ax.barh(ys, failed, left=[a + b for a, b in zip(ok, other)], color="white", edgecolor="0.2", hatch="xx",
            label="failed")
    ax.set_yticks(list(ys))
    ax.set_yticklabels(names)
    ax.set_xlabel("trials")
    ax.xaxis.set_major_locator(_integer_ticks())
    ax.set_title(f"{s.name}: ECO success", pad=22)
    # above the axes, never over a bar
    ax.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)
    return "per ECO, trials that improved on their parent (dark), gained nothing (hatched) or failed (crossed)"


def params(s: StudyState, out: Path) -> str | None:
    """ΔWNS against each swept numeric parameter, one panel per ECO parameter with variation."""
    plt = _plt()
    series: dict[tuple[str, str], list[tuple[float, float]]] = {}
    integer: dict[tuple[str, str], bool] = {}
    for t in _done(s):
        parent = s.trials.get(t.parent or "")
        pw = (parent.metrics or {}).get("wns_ps") if parent else None
        if not isinstance(pw, (int, float)):
            continue
        for k, v in t.params.items():
            if isinstance(v, (int, float)):
                series.setdefault((t.eco, k), []).append((float(v), (t.metrics["wns_ps"] - pw) * NS))
                integer.setdefault((t.eco, k), True)
                integer[(t.eco, k)] &= float(v).is_integer()
    swept = {k: v for k, v in series.items() if len({x for x, _ in v}) > 1}
    if not swept:
        return None
    n = len(swept)
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, ((eco, k), pts) in zip([a for row in axes for a in row], sorted(swept.items())):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o", color="0.2", ms=3)
        ax.axhline(0, color="0.5", lw=0.8, ls=":")
        ax.set_title(f"{eco}", fontsize=8)
        ax.set_xlabel(k)
        if integer[(eco, k)]:
            ax.xaxis.set_major_locator(_integer_ticks())
        ax.set_ylabel(metric_axis("wns_ps", delta=True) + " vs parent")
    for ax in [a for row in axes for a in row][n:]:
        ax.axis("off")
    fig.suptitle(f"{s.name}: swept parameters against the WNS gain", fontsize=9)
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)
    return f"ΔWNS against the parent for {n} swept parameter(s); above the dotted line is a gain"


def render_all(s: StudyState, out: Path) -> tuple[list[tuple[str, str]], str | None]:
    """[(file, caption)] written into `out`, and why plots were skipped (None when drawn)."""
    try:
        _plt()
    except ImportError:
        return [], SKIPPED
    out.mkdir(parents=True, exist_ok=True)
    made = []
    front = pairwise if len(objectives(s, most=6)) >= 3 else pareto
    for name, fn in (("trajectory.png", trajectory), ("progression.png", progression), ("pareto.png", front),
                     ("eco_success.png", eco_success), ("params.png", params)):
        if not _done(s):
            break
        caption = fn(s, out / name)
        if caption is not None:
            made.append((name, caption))
    return made, None
