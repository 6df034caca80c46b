"""Safety domains, ECO classes and the run legality report.  Pure: spec in, text out."""
from __future__ import annotations

from noodle2.engine.catalog.ecos import EcoClass, catalog
from noodle2.engine.errors import Problem
from noodle2.engine.study.models import StudySpec

DOMAINS: dict[str, frozenset[EcoClass]] = {
    "sandbox": frozenset(EcoClass),
    "guarded": frozenset(EcoClass) - {EcoClass.GLOBAL_DISRUPTIVE},
    "locked": frozenset({EcoClass.TOPOLOGY_NEUTRAL}),
}


def stage_classes(spec: StudySpec, stage: int) -> frozenset[EcoClass]:
    allowed = DOMAINS[spec.study.safety_domain]
    narrowed = spec.stages[stage].eco_classes
    return allowed & {EcoClass(c) for c in narrowed} if narrowed is not None else allowed


def refusal(spec: StudySpec, stage: int, eco: str) -> str | None:
    """Why `eco` may not run in `stage`, or None when it may."""
    e = catalog(spec).get(eco)
    if e is None:
        return "unknown ECO"
    s = spec.study
    if e.eco_class not in DOMAINS[s.safety_domain]:
        return f"{s.safety_domain} does not allow {e.eco_class.value}"
    if e.eco_class not in stage_classes(spec, stage):
        return f"stage {spec.stages[stage].name} narrows classes to {sorted(c.value for c in stage_classes(spec, stage))}"
    if s.eco_allowlist is not None and eco not in s.eco_allowlist:
        return "not in the study's eco_allowlist"
    if eco in s.eco_blocklist:
        return "in the study's eco_blocklist"
    return None


def code_features(spec: StudySpec) -> list[tuple[str, str, str]]:
    """What in the study runs code by design, or sends its data out, beside the ECO library:
    (allow name, what it is, key path).  Pure: read from the spec only."""
    out: list[tuple[str, str, str]] = []
    tool, n, c = spec.tool, spec.notify, spec.custom
    if tool is not None and tool.kind == "command":
        out.append(("tool_command", f"[tool] runs the program {' '.join(tool.command or [])!r} for every trial",
                    "tool.command"))
    if tool is not None and tool.env:
        out.append(("tool_env", "[tool] env sets variables every tool sees (they can change what it loads): "
                    + ", ".join(sorted(tool.env)), "tool.env"))
    if n is not None and n.command:
        out.append(("notify", f"[notify] runs the program {' '.join(n.command)!r} when the study ends",
                    "notify.command"))
    if n is not None and n.webhook:
        out.append(("webhook", f"[notify] POSTs the study's results to {n.webhook}", "notify.webhook"))
    if c is not None:
        own = [e for e in c.ecos if not e.source.startswith("plugin:")]
        plugins = [e for e in c.ecos if e.source.startswith("plugin:")]
        if own:
            out.append(("custom_ecos", "custom ECOs run their own Tcl inside sta: "
                        + ", ".join(f"{e.name} ({e.source})" for e in own), "custom.ecos"))
        named = [f"ECO {e.name} ({e.source})" for e in plugins]
        named += [f"metric {m.name} ({m.source_name})" for m in c.metrics if m.source_name.startswith("plugin:")]
        if named:
            out.append(("plugins", "installed plugins run their code in sta and in the engine: " + ", ".join(named),
                        "custom"))
    return out


def feature_problems(spec: StudySpec) -> list[Problem]:
    """`locked` runs only what its study names in [safety] allow."""
    if spec.study is None or spec.study.safety_domain != "locked":
        return []
    allowed = set(spec.safety.allow) if spec.safety is not None else set()
    return [Problem("N2-E122", f"{what}; the locked domain runs it only when [safety] allow names {name!r}", key,
                    hint=f'add [safety] allow = ["{name}"] if you mean it, or remove it from the study')
            for name, what, key in code_features(spec) if name not in allowed]


def legality_problems(spec: StudySpec) -> list[Problem]:
    out = feature_problems(spec)
    for i, st in enumerate(spec.stages):
        if st is None:  # a stage that failed validation (reported there)
            continue
        for j, eco in enumerate(st.ecos):
            why = refusal(spec, i, eco)
            if why is not None and eco in catalog(spec):
                out.append(Problem("N2-E111", f"ECO {eco} ({catalog(spec)[eco].eco_class.value}) is illegal in stage "
                                   f"{st.name}: {why}", f"stages[{i}].ecos[{j}]"))
    return out


def legality_gates(spec: StudySpec) -> list[dict]:
    """The legality gate of every (stage, ECO), as the engine journals it before any compute."""
    from noodle2.engine.policy.trace import gate

    out = []
    for i, st in enumerate(spec.stages):
        for e in st.ecos:
            why = refusal(spec, i, e)
            out.append(gate("legality", e, why is None, {"class": catalog(spec)[e].eco_class.value,
                                                          "domain": spec.study.safety_domain,
                                                          **({"refused": why} if why else {})}, i))
    return out


def legality_report(spec: StudySpec, outside: list[str] | None = None) -> str:
    """`outside`: inputs the study file reads from beyond its own folder, named for the operator."""
    s, a, r = spec.study, spec.abort, spec.rails
    allowed = DOMAINS[s.safety_domain]
    refused = [c.value for c in EcoClass if c not in allowed]
    lines = [f"# Run legality report — {s.name}", "",
             f"safety domain: {s.safety_domain} — allows {', '.join(c.value for c in EcoClass if c in allowed)}"
             + (f"; refuses {', '.join(refused)}" if refused else ""),
             f"eco allowlist: {', '.join(s.eco_allowlist) if s.eco_allowlist is not None else '(all)'}; "
             f"blocklist: {', '.join(s.eco_blocklist) or '(none)'}", ""]
    for i, st in enumerate(spec.stages):
        lines.append(f"stage {st.name} [{st.mode}, {st.trials} trial{'s' * (st.trials != 1)}, "
                     f"{st.survivors} survivor{'s' * (st.survivors != 1)}]"
                     + (f" — classes narrowed to {', '.join(st.eco_classes)}" if st.eco_classes is not None else ""))
        for eco in st.ecos:
            why = refusal(spec, i, eco)
            cls = catalog(spec)[eco].eco_class.value if eco in catalog(spec) else "?"
            lines.append(f"  {'✓' if why is None else '✗'} {eco:<22} {cls:<18}" + (f" refused: {why}" if why else ""))
        if st.max_wns_regression_ps is not None:
            lines.append(f"  abort if best WNS regresses more than {st.max_wns_regression_ps:g} ps below the parents' best")
    rails = [f"  survivors may not be more than {r.max_wns_regression_vs_parent_ps:g} ps worse in WNS than their parent"
             ] if r.max_wns_regression_vs_parent_ps is not None else []
    rails += [f"  survivors keep {m} ≤ {v:g}" for m, v in sorted(r.max.items())]
    rails += [f"  survivors keep {m} ≥ {v:g}" for m, v in sorted(r.min.items())]
    for cls, b in sorted(r.eco_class.items()):
        per = [f"{what} {v:g}" for what, v in (("cells", b.max_cells), ("area added µm²", b.max_area_added_um2),
                                                ("leakage added W", b.max_leakage_added_w)) if v is not None]
        study = [f"{what} {v:g}" for what, v in (("cells", b.study_max_cells),
                                                  ("area added µm²", b.study_max_area_added_um2),
                                                  ("leakage added W", b.study_max_leakage_added_w)) if v is not None]
        rails.append(f"  {cls} budget: " + "; ".join(x for x in (
            ("per trial at most " + ", ".join(per)) if per else "", ("per lineage at most " + ", ".join(study))
            if study else "") if x))
    lines += ["", "rails:", *(rails or ["  (none)"]),
              "", "abort criteria:",
              f"  an ECO that fails {a.eco_failure_limit} times is disabled for the rest of the study",
              f"  an ECO class is disabled once {a.class_disable_after} of its ECOs are disabled",
              "  a stage aborts when every trial fails"
              + (", or when its WNS regression limit (under the stage above) is broken"
                 if any(st.max_wns_regression_ps is not None for st in spec.stages) else ""),
              (f"  a stage aborts once {a.integrity_limit(s.safety_domain)} of its trials fail an integrity check "
               f"({s.safety_domain})" if a.integrity_limit(s.safety_domain) else
               f"  integrity failures never abort a stage ({s.safety_domain}: each is contained at its trial)"),
              f"  the study is blocked when the base case fails, or when one ECO crashes the tool on "
              f"{a.catastrophic_crash_cases} different parent cases",
              f"  plateau: stop when {a.plateau_stages} stage(s) in a row improve best WNS by less than "
              f"{a.plateau_min_gain_ps:g} ps" if a.plateau_stages else "  plateau: off",
              "", "priors: " + ("order each stage's ECO budget (trusted, mixed, unknown) and skip suspicious ECOs"
                                if s.safety_domain in ("guarded", "locked") else "recorded, not applied (sandbox)")]
    sdc = ("sourced as raw Tcl: the file may run any command, exec included (sandbox)"
           if s.safety_domain == "sandbox" else "read by the SDC-only reader: SDC commands and core Tcl, no files "
           "or processes")
    features = code_features(spec)
    allow = set(spec.safety.allow)
    lines += ["", "runs code or sends data by design:"]
    lines += [f"  {'✗' if s.safety_domain == 'locked' and name not in allow else '✓'} {what}"
              + (" (allowed by [safety] allow)" if name in allow else "") for name, what, _ in features] or ["  nothing"]
    lines += ["", f"SDC: {sdc}",
              "inputs from outside the study file's folder: " + (", ".join(outside) if outside else "none")
              + " (copied into the study directory with their hashes)"]
    problems = legality_problems(spec)
    lines += ["", f"verdict: {'LEGAL' if not problems else f'ILLEGAL ({len(problems)} refused)'}"]
    return "\n".join(lines) + "\n"
