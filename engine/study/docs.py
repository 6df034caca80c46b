"""docs/study-file.md, generated from the study-file models (engine/study/models.py), so that the
reference and the validator can never disagree.  Regenerate with
`.venv/bin/python -m noodle2.engine.study.docs > docs/study-file.md`; tests/test_docs.py checks it."""
from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from noodle2.engine.study.models import StudySpec, json_schema

# An example for keys whose default shows nothing useful.
EXAMPLES: dict[str, str] = {
    "study.name": 'name = "mac16"', "study.tags": 'tags = ["mac16", "osu018"]',
    "study.eco_allowlist": 'eco_allowlist = ["resize_critical", "pin_swap"]',
    "study.eco_blocklist": 'eco_blocklist = ["upsize_all"]', "study.description": 'description = "mac16 at 250 MHz"',
    "study.author": 'author = "jane"', "study.goal": "goal = { wns_ps = 0 }",
    "design.top": 'top = "mac16"', "design.liberty": 'liberty = ["/pdk/lib/my_stdcells.lib"]',
    "design.rtl": 'rtl = ["designs/mac16/mac16.v"]', "design.sdc": 'sdc = "designs/mac16/mac16.sdc"',
    "design.netlist": 'netlist = "/work/chip/top.netlist.v"', "design.base_case": 'base_case = "mac"',
    "tool.command": 'command = ["python3", "my_eco.py", "{trial_dir}"]',
    "tool.env": 'env = { OMP_NUM_THREADS = "1" }',
    "execution.max_parallel": "max_parallel = 4", "execution.hard_timeout_s": "hard_timeout_s = 900",
    "execution.memory_limit_mb": "memory_limit_mb = 4096",
    "ranking.objectives": 'objectives = ["wns_ps", "area_um2"]', "ranking.weights": "weights = { wns_ps = 1.0, tns_ps = 0.2 }",
    "ranking.tolerance": "tolerance = { wns_ps = 5 }", "ranking.directions": 'directions = { my_metric = "min" }',
    "rails.max_wns_regression_vs_parent_ps": "max_wns_regression_vs_parent_ps = 50",
    "rails.eco_class": "eco_class.placement_local = { max_cells = 40, study_max_area_added_um2 = 500 }",
    "abort.plateau_stages": "plateau_stages = 3",
    "priors.import_from": 'import_from = ["studies/mac16-20261126-101500"]',
    "stages.name": 'name = "explore"', "stages.trials": "trials = 8", "stages.survivors": "survivors = 3",
    "stages.ecos": 'ecos = ["buffer_fanout", "pin_swap"]',
    "stages.params": "params.buffer_fanout = { paths = { min = 5, max = 20 }, max_nets = [2, 4] }",
    "stages.after": 'after = ["explore"]', "stages.max_wns_regression_ps": "max_wns_regression_ps = 100",
    "stages.eco_classes": 'eco_classes = ["topology_neutral"]', "stages.repeat": "repeat = 20",
    "stages.keep_parents": "keep_parents = true",
    "stages.ranking": 'ranking = { objective = "hot_ratio" }', "stages.stop_when_flat": "stop_when_flat = 10",
}


def _type(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in prop:
        return "table"
    if "enum" in prop:
        return " \\| ".join(json.dumps(v) for v in prop["enum"])
    if "const" in prop:
        return json.dumps(prop["const"])
    if "anyOf" in prop:
        return " or ".join(_type(p, defs) for p in prop["anyOf"] if p.get("type") != "null") + " (optional)"
    t = prop.get("type")
    if t == "array":
        return f"list of {_type(prop.get('items', {}), defs)}"
    if t == "object":
        return f"table of {_type(prop.get('additionalProperties', {}), defs)}"
    bounds = []
    for k, op in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")):
        if k in prop:
            bounds.append(f"{op} {prop[k]:.12g}")
    if "pattern" in prop:
        bounds.append(f"matching `{prop['pattern']}`")
    return {"integer": "integer", "number": "number", "string": "string", "boolean": "boolean"}.get(t, t or "value") + (
        f" ({', '.join(bounds)})" if bounds else "")


def _default(model: type[BaseModel], key: str) -> str:
    f = model.model_fields[key]
    if f.is_required():
        return "**required**"
    d = f.default
    if isinstance(d, BaseModel):
        return "(defaults)"
    return "none" if d is None else "`" + json.dumps(d) + "`"


def _example(section: str, key: str, model: type[BaseModel]) -> str:
    if f"{section}.{key}" in EXAMPLES:
        return "`" + EXAMPLES[f"{section}.{key}"] + "`"
    d = model.model_fields[key].default
    if d is None or d == [] or d == {} or isinstance(d, BaseModel):
        return ""
    return f"`{key} = {json.dumps(d)}`"


def reference() -> str:
    schema = json_schema()
    defs = schema.get("$defs", {})
    out = ["# The study file", "",
           "Every key of a noodle2 study file (TOML), generated from the models that validate it",
           "(`engine/study/models.py`; regenerate with `.venv/bin/python -m noodle2.engine.study.docs > docs/study-file.md`).",
           "`noodle2 init FILE` writes a complete, commented one; `noodle2 schema` prints the JSON Schema",
           "for editors (Taplo, VS Code's Even Better TOML); `noodle2 validate FILE` checks one.", ""]
    for section, field in StudySpec.model_fields.items():
        ann = field.annotation
        model = ann.__args__[0] if section == "stages" else ann  # list[Stage]
        header = f"[[{section}]]" if section == "stages" else f"[{section}]"
        about = (model.__doc__ or "").strip().split(": ", 1)[-1]
        out += [f"## `{header}`", "", about[:1].upper() + about[1:], "",
                "| key | type | default | meaning | example |", "|---|---|---|---|---|"]
        props = defs[model.__name__]["properties"]
        for key, f in model.model_fields.items():
            meaning = " ".join((f.description or "").split()).replace("|", "\\|")
            out.append(f"| `{key}` | {_type(props[key], defs)} | {_default(model, key)} | {meaning} | "
                       f"{_example(section, key, model)} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(reference(), end="")
