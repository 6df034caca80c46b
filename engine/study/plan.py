"""The plan a study file describes, as text: stages, budgets, trial counts."""
from __future__ import annotations

from pathlib import Path

from noodle2.engine.executors.cgroupfs import usable_cpus
from noodle2.engine.fmt import plural
from noodle2.engine.policy.ranking import maximise, metrics_of
from noodle2.engine.policy.safety import legality_report
from noodle2.engine.study.models import Study


def format_plan(study: Study) -> str:
    s = study.spec
    total = sum(st.trials for st in s.stages)
    names = [st.name for st in s.stages]
    x = s.execution
    hard = x.hard_timeout_s or x.soft_timeout_s * 1.25 + 5
    lines = [
        f"study {s.study.name}: {plural(len(s.stages), 'stage')}, {plural(total, 'trial')} + 1 base case "
        f"({s.base_case}, noop)",
        f"  design   top {s.design.top}  "
        + (f"liberty {', '.join(Path(p).name for p in s.design.liberty)}" if s.design.liberty else f"tech {s.design.tech or '-'}")
        + f"  tool {s.tool.kind}"
        + (f"  corners {', '.join(c.name for c in s.design.corners)}" if s.design.corners else "")
        + (f"  parasitics {Path(s.design.parasitics).name}" if s.design.parasitics else "")
        + (f"  dont_use {', '.join(s.design.dont_use)}" if s.design.dont_use else ""),
        *_sdc_notes(study),
        f"  execute  {x.executor}, max_parallel {x.max_parallel or usable_cpus()}, "
        f"timeouts {x.soft_timeout_s:g} s soft / {hard:g} s hard, retries {x.retries}",
        "  rank     " + s.ranking.kind + " " + ", ".join(
            f"{m} ({'max' if maximise(m, s.ranking) else 'min'})" for m in metrics_of(s.ranking)),
        "",
        f"  {'#':>2}  {'stage':<16} {'mode':<10} {'trials':>6} {'surv':>5}  {'after':<18} ECOs",
    ]
    for i, (st, deps) in enumerate(zip(s.stages, s.stage_deps())):
        after = ", ".join(names[d] for d in deps) or "(base case)"
        lines.append(f"  {i:>2}  {st.name:<16} {st.mode:<10} {st.trials:>6} {st.survivors:>5}  {after:<18} {', '.join(st.ecos)}")
    return "\n".join(lines) + "\n\n" + legality_report(s, study.outside_inputs())


def _sdc_notes(study: Study) -> list[str]:
    """What the SDC-only reader translates for OpenSTA 2.0.17, said before anything runs."""
    d = study.spec.design
    if not d.sdc or study.spec.tool.kind != "opensta":
        return []
    from noodle2.engine.fsutil import read_capped
    from noodle2.engine.tools.timing.sdc import notes

    try:
        text = read_capped(study.resolve(d.sdc), 64 << 20, follow=True).decode(errors="replace")
    except (OSError, ValueError):
        return []
    return [f"  sdc      {d.sdc} line {line}: {what}" for line, what in notes(text)]
