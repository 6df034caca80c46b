"""`noodle2 compare A B`: two studies side by side — best metrics (better or worse, coloured on a
terminal), ECO effectiveness from each study's journaled leaderboard, and the winners' change
lists against their base netlists."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from noodle2.engine.journal.state import StudyState
from noodle2.engine.reports.changes import Changes, diff
from noodle2.engine.reports.status import best_case
from noodle2.engine.reports.summary import HEADLINE
from noodle2.engine.study.models import maximised

GREEN, RED, DIM, RESET = "\033[32m", "\033[31m", "\033[2m", "\033[0m"


def _changes(d: Path, s: StudyState) -> Changes | None:
    from noodle2.engine.tools.netlist import NetlistError, parse_netlist

    best = best_case(s)
    top = (s.spec.get("design") or {}).get("top", "")
    if best is None:
        return None
    try:
        return diff(parse_netlist((d / "snapshot" / f"{top}.v").read_text()),
                    parse_netlist((d / "trials" / best.case_id / f"{top}.v").read_text()))
    except (OSError, NetlistError):
        return None


def compare(a: tuple[Path, StudyState], b: tuple[Path, StudyState], colour: bool) -> str:
    (da, sa), (db, sb) = a, b

    def paint(text: str, better: bool | None) -> str:
        if not colour or better is None:
            return text
        return f"{GREEN if better else RED}{text}{RESET}"
    ba, bb = best_case(sa), best_case(sb)
    ma, mb = (ba.metrics or {}) if ba else {}, (bb.metrics or {}) if bb else {}
    w = 24
    out = [f"{'':{w}} {'A: ' + sa.name:>22} {'B: ' + sb.name:>22}   B against A",
           f"{'study dir':{w}} {da.resolve().name[-22:]:>22} {db.resolve().name[-22:]:>22}",
           f"{'status':{w}} {sa.status:>22} {sb.status:>22}",
           f"{'best case':{w}} {(ba.case_id if ba else '—'):>22} {(bb.case_id if bb else '—'):>22}",
           f"{'trials finished':{w}} {sa.counts()[0]:>22} {sb.counts()[0]:>22}"]
    for key, label, scale, digits in HEADLINE:
        va, vb = ma.get(key), mb.get(key)
        if not isinstance(va, (int, float)) and not isinstance(vb, (int, float)):
            continue
        fa = f"{va * scale:,.{digits}f}" if isinstance(va, (int, float)) else "—"
        fb = f"{vb * scale:,.{digits}f}" if isinstance(vb, (int, float)) else "—"
        verdict, better = "", None
        if isinstance(va, (int, float)) and isinstance(vb, (int, float)) and va != vb:
            better = (vb > va) == bool(maximised(key))
            verdict = f"{(vb - va) * scale:+,.{digits}f} {'better' if better else 'worse'}"
        elif isinstance(va, (int, float)) and va == vb:
            verdict = "same"
        out.append(f"{label:{w}} {fa:>22} {paint(f'{fb:>22}', better)}   {paint(verdict, better)}")
    if ("pre_wns_ps" in ma) != ("pre_wns_ps" in mb):
        out.append(f"  note: {'A' if 'pre_wns_ps' in ma else 'B'}'s best was timed after routing, the other's before: "
                   "the timing rows are not like for like")
    out += ["", "ECO effectiveness (each study's leaderboard: trials, improved, mean ΔWNS ps)"]
    rows_a = {r["eco"]: r for r in sa.eco_stats}
    rows_b = {r["eco"]: r for r in sb.eco_stats}
    for eco in sorted(set(rows_a) | set(rows_b)):
        def cell(r: dict[str, Any] | None) -> str:
            if r is None:
                return "—"
            mean = "—" if r.get("mean_dwns") is None else f"{r['mean_dwns']:+.1f}"
            return f"{r['trials']:>3} {r['successes']:>3} {mean:>8}"
        ra, rb = rows_a.get(eco), rows_b.get(eco)
        better = None
        if ra and rb and ra.get("mean_dwns") is not None and rb.get("mean_dwns") is not None \
                and ra["mean_dwns"] != rb["mean_dwns"]:
            better = rb["mean_dwns"] > ra["mean_dwns"]
        out.append(f"  {eco:{w - 2}} {cell(ra):>22} {paint(f'{cell(rb):>22}', better)}")
    out += ["", "the winners' changes against their base netlists"]
    for tag, d, s in (("A", da, sa), ("B", db, sb)):
        c = _changes(d, s)
        if c is None:
            out.append(f"  {tag}: (no winner netlist)")
        else:
            out.append(f"  {tag}: {len(c.resized)} resized, {len(c.added)} added, {len(c.swapped)} pin swaps, "
                       f"{len(c.reconnected)} reconnected pins, {len(c.removed)} removed")
            for i, old, new in c.resized[:5]:
                out.append(f"     {DIM if colour else ''}resize {i}: {old} → {new}{RESET if colour else ''}")
    return "\n".join(out) + "\n"
