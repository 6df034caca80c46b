"""Checks across fields and files that the models' types cannot express: stages, ECOs,
the design's files and technology, the tool, the ranking."""
from __future__ import annotations

import difflib
import importlib.util
import os
import re
from pathlib import Path

from noodle2.engine.catalog.ecos import CATALOG, ROUTE_MODES, EcoDef, catalog
from noodle2.engine.catalog.metrics import RANGES, post_route_only
from noodle2.engine.errors import N2Error, Problem
from noodle2.engine.policy.ranking import metrics_of
from noodle2.engine.policy.safety import legality_problems
from noodle2.engine.study.imports import import_problems
from noodle2.engine.study.models import (
    MAX_STAGES,
    MAXIMISE,
    Custom,
    Execution,
    Notify,
    ParamSetting,
    Ranking,
    Stage,
    Study,
    StudySpec,
    Tool,
    given_inputs,
    maximised,
    stored_name,
)
from noodle2.engine.tools.tech.liberty import liberty_cell_names


def check_semantics(study: Study) -> list[Problem]:
    """Cross-field rules pydantic field types cannot express, and the files the study reads.
    A section that failed validation is None here: its own problems are already reported."""
    spec = study.spec
    out: list[Problem] = _custom_problems(spec.custom) if spec.custom is not None else []
    out += _stages_problems(spec)
    if spec.design is not None:
        out += _design_problems(study)
    if spec.tool is not None:
        out += _tool_problems(study)
        out += _tool_env_problems(spec.tool.env)
    if spec.priors is not None:
        out += import_problems(study)
    if spec.ranking is not None:
        out += _ranking_problems(spec.ranking, spec)
    if spec.study is not None and spec.study.goal and spec.ranking is not None:
        out += [Problem(p.code, p.message.replace("metric", "goal metric", 1), "study.goal", hint=p.hint)
                for p in _ranking_problems(Ranking(kind="lexicographic", objectives=list(spec.study.goal),
                                                   directions=spec.ranking.directions), spec)]
    out += _notify_problems(spec.notify) if spec.notify is not None else []
    out += _metric_name_problems(spec)
    out += _execution_problems(spec.execution) if spec.execution is not None else []
    if spec.study is not None:
        known = catalog(spec)
        for name in [*(spec.study.eco_allowlist or []), *spec.study.eco_blocklist]:
            if name not in known:
                out.append(Problem("N2-E106", f"unknown ECO {name!r} in allow/blocklist", "study"))
        out += legality_problems(spec)
    return out


def _stages_problems(spec: StudySpec) -> list[Problem]:
    out: list[Problem] = []
    names = [s.name if s is not None else None for s in spec.stages]
    if (total := sum(s.repeat for s in spec.stages if s is not None)) > MAX_STAGES:
        out.append(Problem("N2-E103", f"the stages expand to {total} (repeat included); the limit is {MAX_STAGES}",
                           "stages"))
    known = catalog(spec)
    for i, s in enumerate(spec.stages):
        if s is not None:
            out += _stage_problems(spec, i, s, names)
            out += _stage_eco_problems(f"stages[{i}]", s, known)
            out += _stage_route_problems(spec, i, s, names)
            out += _stage_param_problems(f"stages[{i}]", s, known)
            out += _stage_ranking_problems(spec, i, s)
    return out


def _tool_env_problems(env: dict[str, str]) -> list[Problem]:
    """[tool] env: noodle2's own variables stay noodle2's; values are one line of text."""
    from noodle2.engine.quote import control_chars

    out = []
    for k, v in env.items():
        if k.upper().startswith(("N2_", "NOODLE2")):
            out.append(Problem("N2-E127", f"{k} is noodle2's own variable: a study cannot set it", f"tool.env.{k}",
                               hint="remove it; noodle2 sets its N2_* and NOODLE2_* variables itself"))
        elif bad := control_chars(v):
            out.append(Problem("N2-E127", f"the value of {k} holds the control character {bad[0]!r}", f"tool.env.{k}",
                               hint="give a one-line value"))
    return out


def _stage_ranking_problems(spec: StudySpec, i: int, s: Stage) -> list[Problem]:
    """A stage's own ranking is checked as the study's is; and no stage may rank on a metric its
    mode cannot produce (it would fail every trial, or block the study at its base case)."""
    out = [Problem(p.code, p.message, f"stages[{i}].{p.path}", hint=p.hint)
           for p in (_ranking_problems(s.ranking, spec) if s.ranking is not None else [])]
    r = s.ranking or spec.ranking
    if r is None or s.mode in ROUTE_MODES:
        return out
    for m in metrics_of(r):
        if post_route_only(m.split("@", 1)[0]):
            where = f"stages[{i}].ranking" if s.ranking is not None else "ranking"
            out.append(Problem("N2-E126", f"stage {s.name!r} (mode {s.mode}) ranks on {m!r}, which only a route stage "
                               "measures", where,
                               hint=f"give stage {s.name!r} its own [stages.ranking] (e.g. objective = \"wns_ps\"), or "
                                    "make it a route stage"))
    return out


def _stage_problems(spec: StudySpec, i: int, s: Stage, names: list[str | None]) -> list[Problem]:
    at, out = f"stages[{i}]", []
    if s.repeat > 1 and len(s.name) > 64 - 1 - len(str(s.repeat)):
        out.append(Problem("N2-E103", f"name {s.name!r} is too long to repeat as {s.name}.{s.repeat}", f"{at}.name"))
    if s.survivors > s.trials:
        out.append(Problem("N2-E104", f"survivors ({s.survivors}) must be ≤ trials ({s.trials})", f"{at}.survivors"))
    if names.index(s.name) != i:
        out.append(Problem("N2-E110", f"stage name {s.name!r} is used twice", f"{at}.name"))
    for dep in s.after or []:
        if dep not in names:
            out.append(Problem("N2-E108", f"after names unknown stage {dep!r}", f"{at}.after"))
        elif names.index(dep) >= i:
            out.append(Problem("N2-E108", f"after names {dep!r}, which is not an earlier stage", f"{at}.after"))
    return out


def _stage_eco_problems(at: str, s: Stage, known: dict[str, EcoDef]) -> list[Problem]:
    out, route = [], s.mode in ROUTE_MODES
    for j, e in enumerate(s.ecos):
        if e not in known:
            near = difflib.get_close_matches(e, sorted(known), n=1, cutoff=0.7)
            out.append(Problem("N2-E106", f"unknown ECO {e!r}", f"{at}.ecos[{j}]",
                               hint=f"did you mean {near[0]!r}? (`noodle2 ecos` lists them all)" if near else None))
        elif known[e].physical and not route:
            out.append(Problem("N2-E118", f"{e} acts in place and route; stage mode {s.mode!r} never places",
                               f"{at}.ecos[{j}]", hint='use it in a stage with mode = "route" or "route_power"'))
        elif e == "resynth_cone" and route:
            out.append(Problem("N2-E118", "resynth_cone runs in the sta modes only", f"{at}.ecos[{j}]",
                               hint="re-synthesise in an earlier sta stage; route its survivors after"))
    return out


def _stage_route_problems(spec: StudySpec, i: int, s: Stage, names: list[str | None]) -> list[Problem]:
    if s.mode not in ROUTE_MODES:
        return []
    at, out = f"stages[{i}]", []
    deps = [names.index(d) for d in (s.after or []) if d in names] if s.after is not None else [i - 1]
    unrouted = [names[j] for j in deps if j >= 0 and spec.stages[j] is not None
                and spec.stages[j].mode not in ROUTE_MODES]
    if s.keep_parents and (unrouted or i == 0):
        out.append(Problem("N2-E118", "keep_parents would rank unrouted parents (from "
                           f"{', '.join(unrouted) or 'the base case'}) against routed trials", f"{at}.keep_parents",
                           hint="keep parents only in a route stage after another route stage"))
    if spec.design is not None and (spec.design.liberty or (spec.tool and spec.tool.kind != "opensta")):
        out.append(Problem("N2-E118", f"mode {s.mode!r} places with qflow on a technology's LEF; this study "
                           "gives its own Liberty (design.liberty) or tool", f"{at}.mode",
                           hint="use design.tech = \"osu018\" (or osu035, osu050) for place and route"))
    return out


def _stage_param_problems(at: str, s: Stage, known: dict[str, EcoDef]) -> list[Problem]:
    out = []
    for e, settings in s.params.items():
        if e not in s.ecos:
            out.append(Problem("N2-E107", f"params given for {e!r}, which the stage does not use", f"{at}.params.{e}"))
            continue
        if e not in known:
            continue
        for pname, setting in settings.items():
            ps, key = known[e].param(pname), f"{at}.params.{e}.{pname}"
            if ps is None:
                legal = ", ".join(p.name for p in known[e].params) or "none"
                out.append(Problem("N2-E107", f"{e} has no parameter {pname!r} (has: {legal})", key))
                continue
            out += [Problem("N2-E107", msg, key) for v in _setting_values(setting) if (msg := ps.check(v)) is not None]
            if isinstance(setting, list) and not setting:
                out.append(Problem("N2-E107", "a list of choices needs at least one value", key))
            if isinstance(setting, dict) and (set(setting) != {"min", "max"} or setting["min"] > setting["max"]):
                out.append(Problem("N2-E107", "a range is {min = a, max = b} with a ≤ b", key))
    return out


def _notify_problems(n: Notify) -> list[Problem]:
    out = []
    if n.webhook is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", n.webhook):
        out.append(Problem("N2-E120", f"webhook {n.webhook!r} is not an http(s) URL", "notify.webhook"))
    if n.command is not None and not n.command:
        out.append(Problem("N2-E120", "command is empty", "notify.command"))
    return out


def _metric_name_problems(spec: StudySpec) -> list[Problem]:
    """Metrics named by CI thresholds and rails."""
    out = []
    if spec.ci is not None and spec.ranking is not None:
        for m in spec.ci.thresholds:
            if maximised(m) is None and m not in spec.ranking.directions:
                out.append(Problem("N2-E113", f"ci threshold on {m!r}: a metric with no known direction", "ci.thresholds",
                                   hint=f'add [ranking] directions = {{ {m} = "max" }} (or "min")'))
    if spec.rails is not None:
        for side in ("max", "min"):
            for m in getattr(spec.rails, side):
                if not re.fullmatch(r"[A-Za-z_]\w{0,47}(@[a-z][a-z0-9_]{0,15})?", m):
                    out.append(Problem("N2-E113", f"rail on {m!r}: not a metric name", f"rails.{side}"))
    return out


def _execution_problems(e: Execution) -> list[Problem]:
    out = []
    if e.executor == "ray" and importlib.util.find_spec("ray") is None:
        out.append(Problem("N2-E114", "executor = \"ray\" needs Ray, which is not installed", "execution.executor",
                           hint="pip install 'noodle2[ray]' (or executor = \"local\")"))
    if e.hard_timeout_s is not None and e.hard_timeout_s < e.soft_timeout_s:
        out.append(Problem("N2-E103", "hard_timeout_s must be ≥ soft_timeout_s", "execution.hard_timeout_s"))
    return out


def tcl_unbalanced(text: str) -> int | None:
    """The line where a Tcl body's braces or brackets stop balancing, or None when they do."""
    depth = {"{": 0, "[": 0}
    close = {"}": "{", "]": "["}
    line, i = 1, 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "\n":
            line += 1
        elif ch in depth:
            depth[ch] += 1
        elif ch in close:
            depth[close[ch]] -= 1
            if depth[close[ch]] < 0:
                return line
        i += 1
    return None if not any(depth.values()) else line


def _custom_problems(c: Custom) -> list[Problem]:
    out: list[Problem] = []
    seen: set[str] = set()
    for i, e in enumerate(c.ecos):
        at = f"custom.ecos[{i}]" if not e.source.startswith("file:") else e.source[5:]
        if e.name in CATALOG or e.name in seen:
            out.append(Problem("N2-E121", f"ECO {e.name!r} is defined twice (or is a built-in)", f"{at}.name"))
        seen.add(e.name)
        if (line := tcl_unbalanced(e.tcl)) is not None:
            out.append(Problem("N2-E121", f"{e.name}: the Tcl body's braces or brackets do not balance "
                               f"(body line {line})", f"{at}.tcl"))
        if e.eco_class != "placement_local" and e.max_new_instances:
            out.append(Problem("N2-E121", f"{e.name}: max_new_instances is for placement_local ECOs",
                               f"{at}.max_new_instances"))
        pnames = [p.name for p in e.params]
        if len(set(pnames)) != len(pnames):
            out.append(Problem("N2-E121", f"{e.name}: a parameter name is used twice", f"{at}.params"))
        for p in e.params:
            if not p.min <= p.default <= p.max:
                out.append(Problem("N2-E121", f"{e.name}.{p.name}: default {p.default:g} outside [{p.min:g}, {p.max:g}]",
                                   f"{at}.params"))
            if p.kind == "int" and not all(float(v).is_integer() for v in (p.min, p.max, p.default)):
                out.append(Problem("N2-E121", f"{e.name}.{p.name}: an int parameter needs whole min, max and default",
                                   f"{at}.params"))
    names = [m.name for m in c.metrics]
    for i, m in enumerate(c.metrics):
        at = f"custom.metrics[{i}]"
        if (m.regex is None) == (m.json_pointer is None):
            out.append(Problem("N2-E121", f"metric {m.name}: give exactly one of regex and json_pointer", at))
        if m.regex is not None:
            from noodle2.engine.tools.custom_metrics import user_pattern

            try:
                if user_pattern(m.regex).groups != 1:
                    out.append(Problem("N2-E121", f"metric {m.name}: the regex needs exactly one group", f"{at}.regex"))
            except ValueError as e:
                out.append(Problem("N2-E121", f"metric {m.name}: bad regex: {e}", f"{at}.regex"))
        if m.json_pointer is not None and not (m.json_pointer == "" or m.json_pointer.startswith("/")):
            out.append(Problem("N2-E121", f"metric {m.name}: a JSON pointer starts with /", f"{at}.json_pointer"))
        if os.path.isabs(m.source) or ".." in Path(m.source).parts:
            out.append(Problem("N2-E121", f"metric {m.name}: source must be a file inside the trial directory",
                               f"{at}.source"))
        if names.count(m.name) > 1:
            out.append(Problem("N2-E121", f"metric {m.name} is defined twice", f"{at}.name"))
    return out


def _design_problems(study: Study) -> list[Problem]:
    spec, d, tool = study.spec, study.spec.design, study.spec.tool or Tool()
    out: list[Problem] = []
    if not d.rtl and not d.netlist and tool.kind == "opensta":
        out.append(Problem("N2-E101", "give rtl = [...] or netlist = \"...\"", "design"))
    if d.parasitics and not d.netlist:
        out.append(Problem("N2-E101", "parasitics describe a placed and routed netlist's nets: give netlist = "
                           "\"...\" with it", "design.parasitics"))
    for key, given in given_inputs(spec):
        if (msg := _path_problem(study, given)) is not None:
            out.append(Problem("N2-E109" if "liberty" not in key else "N2-E301", msg, key))
    for i, given in enumerate(d.include_dirs):
        if not study.resolve(given).is_dir() and path_text_problem(given) is None:
            out.append(Problem("N2-E109", f"{given!r} is not a folder", f"design.include_dirs[{i}]"))
    if tool.kind == "opensta" and not out:
        out += _tech_problems(study)
    domain = spec.study.safety_domain if spec.study is not None else "guarded"
    if tool.kind == "opensta" and d.sdc and domain != "sandbox" and _path_problem(study, d.sdc) is None:
        from noodle2.engine.fsutil import read_capped
        from noodle2.engine.tools.timing.sdc import forbidden

        text = read_capped(study.resolve(d.sdc), 64 << 20, follow=True).decode(errors="replace")
        for line, cmd in forbidden(text)[:5]:
            out.append(Problem("N2-E115", f"{d.sdc} line {line} calls {cmd!r}, which is not an SDC command; the "
                               f"{domain} domain reads SDC through a reader that allows only SDC commands",
                               "design.sdc"))
    return out


def _tech_problems(study: Study) -> list[Problem]:
    """The technology, its corners and what the design asks of it: every cell of a given
    netlist in its Liberty (physical-only cells aside), every include of the RTL found, a
    route stage only on a technology qflow places and routes."""
    from noodle2.engine.tools.base import TrialFailure
    from noodle2.engine.tools.tech import resolve_tech

    d = study.spec.design
    try:
        tech = resolve_tech(d.tech, [study.resolve(p) for p in d.liberty] if d.liberty else None,
                            dont_use=tuple(d.dont_use), vt=any(st is not None and "vt_swap" in st.ecos
                                                              for st in study.spec.stages))
    except N2Error as err:
        return err.problems
    out: list[Problem] = []
    seen: set[str] = set()
    for i, c in enumerate(d.corners):
        if c.name in seen:
            out.append(Problem("N2-E123", f"corner {c.name!r} is named twice", f"design.corners[{i}].name"))
        seen.add(c.name)
        if not c.liberty and (c.corner or c.name) not in tech.corners:
            out.append(Problem("N2-E123", f"technology {tech.name} has no corner {c.corner or c.name!r} (it has "
                               f"{', '.join(tech.corners)})", f"design.corners[{i}]",
                               hint="name one of those as corner = \"...\", or give liberty = [...] for it"))
        if c.parasitics:
            out.append(Problem("N2-E123", f"corner {c.name!r} has a SPEF of its own, and OpenSTA 2.0.17 reads one "
                               "SPEF for every corner (its read_spef has no -corner)", f"design.corners[{i}].parasitics",
                               hint="give the SPEF once as design.parasitics; to time a corner with other "
                                    "parasitics, run it as a study of its own"))
    shape = _top_and_level_problems(study)
    out += shape
    if d.netlist and not shape and (unknown := unknown_cells(study.resolve(d.netlist), tech)):
        out.append(Problem("N2-E124", f"the netlist uses {len(unknown)} cell(s) that {tech.name}'s Liberty does not "
                           f"have: {', '.join(unknown[:8])}" + (" ..." if len(unknown) > 8 else ""), "design.netlist",
                           hint="pick the technology the netlist was made for (design.tech), or give its Liberty "
                                "files as design.liberty"))
    if d.rtl:
        from noodle2.engine.tools.synthesis.yosys import layout

        try:
            layout([study.resolve(r) for r in d.rtl], [stored_name(r) for r in d.rtl],
                   [study.resolve(x) for x in d.include_dirs], [stored_name(x) for x in d.include_dirs])
        except TrialFailure as e:
            out.append(Problem("N2-E109", e.failure["reason"], "design.rtl"))
    route = [i for i, st in enumerate(study.spec.stages) if st is not None and st.mode in ROUTE_MODES]
    if route and not tech.qflow and not d.liberty:
        out.append(Problem("N2-E118", f"route stages place and route with qflow, which has no {tech.name} technology",
                           f"stages[{route[0]}].mode", hint="use mode = \"sta\" or \"sta_power\" on this "
                           "technology, or an OSU one (osu018, osu035, osu050) to place and route"))
    return out


_MODULE = re.compile(r"^\s*module\s+\\?([^\s(#;]+)", re.M)
_RTL = re.compile(r"^\s*(always|initial)\b|^\s*assign\s+\S+\s*=\s*[^;]*[-+*&|^~?<>]", re.M)


def _top_and_level_problems(study: Study) -> list[Problem]:
    """The top module is in the design's files, and a netlist is gate level, not RTL: both
    used to pass and then block the base case."""
    from noodle2.engine.fsutil import read_capped

    d = study.spec.design
    key, files = ("design.netlist", [d.netlist]) if d.netlist else ("design.rtl", list(d.rtl))
    modules: list[str] = []
    out: list[Problem] = []
    for given in files:
        try:
            text = read_capped(study.resolve(given), 2 << 30, follow=True).decode(errors="replace")
        except (OSError, ValueError):
            return []  # the path check reports it
        modules += _MODULE.findall(text)
        if d.netlist and (m := _RTL.search(text)):
            line = text.count("\n", 0, m.start()) + 1
            out.append(Problem("N2-E125", f"{given} is RTL, not a gate-level netlist (line {line}: "
                               f"{m.group(0).strip()[:40]!r})", key,
                               hint="give it as rtl = [\"...\"] (noodle2 init --rtl): Yosys synthesises it"))
    if modules and d.top not in modules:
        near = difflib.get_close_matches(d.top, modules, n=1)
        out.append(Problem("N2-E125", f"top module {d.top!r} is not in {', '.join(files)} (it has: "
                           f"{', '.join(modules[:8])}{' ...' if len(modules) > 8 else ''})", "design.top",
                           hint=f'top = "{near[0] if near else modules[-1]}"'))
    return out


def unknown_cells(netlist: Path, tech) -> list[str]:
    """Cells of a gate-level netlist that the technology's Liberty lacks and that are not
    physical-only (tap, fill, decap, diode, endcap by name, or connecting nothing)."""
    from noodle2.engine.fsutil import read_capped
    from noodle2.engine.tools.netlist import cell_usage, pinless_cells

    try:
        text = read_capped(netlist, 2 << 30, follow=True).decode(errors="replace")
    except (OSError, ValueError):
        return []  # the path check reports it
    have = liberty_cell_names(tuple(tech.liberty))
    pinless = pinless_cells(text)
    return sorted(c for c in cell_usage(text) if c not in have and c not in pinless and not tech.physical_kind(c))


def _tool_problems(study: Study) -> list[Problem]:
    tool = study.spec.tool
    out: list[Problem] = []
    if tool.kind == "command" and not tool.command:
        out.append(Problem("N2-E101", "kind = \"command\" needs command = [...]", "tool.command"))
    if tool.kind == "command":
        from noodle2.engine.tools.command import placeholder_problem

        for i, arg in enumerate(tool.command or []):
            if (msg := placeholder_problem(arg)) is not None:
                out.append(Problem("N2-E116", msg, f"tool.command[{i}]"))
    return out


def _ranking_problems(r: Ranking, spec: StudySpec) -> list[Problem]:
    out: list[Problem] = []
    metrics = [r.objective] if r.kind == "single" else (list(r.weights) if r.kind == "weighted" else r.objectives)
    if r.kind != "single" and not metrics:
        out.append(Problem("N2-E113", f"kind = {r.kind!r} needs objectives (or weights)", "ranking"))
    measured = _measured_metrics(spec)
    for m in metrics:
        base = m.split("@", 1)[0]
        if measured is not None and base not in measured and not base.startswith(("congestion_", "post_")):
            near = difflib.get_close_matches(m, sorted(measured), n=1, cutoff=0.5)
            out.append(Problem("N2-E113", f"metric {m!r} is not one OpenSTA trials measure", "ranking",
                               hint=(f"did you mean {near[0]!r}? " if near else "") + "`noodle2 ecos` lists the "
                               "custom metrics; the built-in ones are in docs/study-file.md ([ranking])"))
        elif maximised(m) is None and m not in r.directions:
            out.append(Problem("N2-E113", f"metric {m!r} has no known direction", "ranking.directions",
                               hint=f'add directions = {{ {m} = "max" }} (or "min")'))
    return out


def _measured_metrics(spec: StudySpec) -> set[str] | None:
    """The metrics an OpenSTA study's trials can give: built-in, custom and plugin ones; None for
    a command tool, whose metrics file may hold anything."""
    if spec.tool is not None and spec.tool.kind != "opensta":
        return None
    from noodle2.engine.study.plugins import plugin_metrics

    custom = [m.name for m in spec.custom.metrics] if spec.custom is not None else []
    return (set(MAXIMISE) | set(RANGES) | {"sta_warnings", "estimated_nets", "physical_cells"} | set(custom)
            | {m.name for m in plugin_metrics()})


def _setting_values(setting: ParamSetting) -> list[float]:
    if isinstance(setting, dict):
        return list(setting.values())
    return list(setting) if isinstance(setting, list) else [setting]


def path_text_problem(text: str) -> str | None:
    """What makes `text` unusable as a path on any system noodle2 runs on, or None."""
    from noodle2.engine.quote import control_chars

    if not text:
        return "is empty"
    if bad := control_chars(text):
        return f"{text!r} holds the control character {bad[0]!r}"
    for part in text.split("/"):
        if len(part.encode()) > 255:
            return f"{text[:40]!r}… has a path component of {len(part.encode())} bytes (the limit is 255)"
    if len(text.encode()) > 4000:
        return f"{text[:40]!r}… is longer than 4,000 bytes"
    return None


def _path_problem(study: Study, given: str) -> str | None:
    if (msg := path_text_problem(given)) is not None:
        return msg
    try:
        full = study.resolve(given)
        if not full.is_file():
            return f"{given!r} does not exist (looked at {full})"
    except (OSError, ValueError) as e:
        return f"{given!r} cannot be used: {e}"
    return None


# --- mapping problems to codes and lines ----------------------------------------------------
