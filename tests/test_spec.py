"""Study-file validation: every mistake gets a code, a key path, a line and a hint."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from noodle2.engine.errors import N2Error
from noodle2.engine.study.load import load_study, parse_study
from tests.conftest import ROOT, fake_study


def problems(text: str, tmp: Path) -> list:
    with pytest.raises(N2Error) as ei:
        parse_study(text, tmp / "s.toml")
    return ei.value.problems


GOOD = """\
[study]
name = "t"

[design]
top = "fake"

[tool]
kind = "command"
command = ["true"]

[[stages]]
name = "a"
trials = 4
survivors = 2
ecos = ["resize_critical"]

[[stages]]
name = "b"
trials = 3
survivors = 1
ecos = ["pin_swap"]
"""


def test_good_file_loads_with_dag(tmp_path):
    s = parse_study(GOOD, tmp_path / "s.toml")
    assert [st.name for st in s.spec.stages] == ["a", "b"]
    assert s.spec.stage_deps() == [[], [0]]


def test_survivors_above_trials_names_stage_line_and_hint(tmp_path):
    bad = GOOD.replace("survivors = 1", "survivors = 9")
    [p] = problems(bad, tmp_path)
    assert p.code == "N2-E104"
    assert p.path == "stages[1].survivors"
    assert p.line == bad.splitlines().index("survivors = 9") + 1
    assert "9" in p.message and "3" in p.message
    assert "lower survivors" in p.render()


def test_unknown_key_and_wrong_type_and_unknown_eco(tmp_path):
    bad = GOOD.replace('trials = 4', 'trials = "four"\ntrails = 3').replace('"pin_swap"', '"pin_swapp"')
    ps = problems(bad, tmp_path)
    codes = {(p.code, p.path) for p in ps}
    assert ("N2-E102", "stages[0].trials") in codes
    assert ("N2-E105", "stages[0].trails") in codes
    lines = bad.splitlines()
    by_path = {p.path: p for p in ps}
    assert by_path["stages[0].trails"].line == lines.index("trails = 3") + 1


def test_unknown_eco_is_semantic_error_with_path(tmp_path):
    ps = problems(GOOD.replace('"pin_swap"', '"pin_swapp"'), tmp_path)
    assert [(p.code, p.path) for p in ps] == [("N2-E106", "stages[1].ecos[0]")]


def test_broken_toml_reports_line(tmp_path):
    [p] = problems(GOOD.replace('name = "a"', 'name = "a'), tmp_path)
    assert p.code == "N2-E100" and p.line == 12


def test_missing_required_key(tmp_path):
    ps = problems(GOOD.replace('top = "fake"\n', ""), tmp_path)
    assert ("N2-E101", "design.top") in {(p.code, p.path) for p in ps}


def test_after_must_name_earlier_stage(tmp_path):
    bad = GOOD.replace('name = "a"\n', 'name = "a"\nafter = ["b"]\n')
    ps = problems(bad, tmp_path)
    assert [(p.code, p.path) for p in ps] == [("N2-E108", "stages[0].after")]


def test_param_out_of_legal_range(tmp_path):
    bad = GOOD + '[stages.params.pin_swap]\npaths = { min = 0, max = 500 }\n'
    ps = problems(bad, tmp_path)
    assert {p.code for p in ps} == {"N2-E107"}
    assert all(p.path == "stages[1].params.pin_swap.paths" for p in ps)
    assert ps[0].line == len(bad.splitlines())


def test_inputs_from_outside_the_study_folder_are_copied_in_and_listed(tmp_path):
    from noodle2.engine.run.studydir import new_study_dir, read_provenance
    from noodle2.engine.study.plan import format_plan

    sub, shared = tmp_path / "study", tmp_path / "shared lib$[x]"
    sub.mkdir()
    shared.mkdir()
    (shared / "top.v").write_text("module fake(); endmodule\n")
    text = GOOD.replace('top = "fake"', f'top = "fake"\nrtl = ["../shared lib$[x]/top.v", "{shared}/top.v"]')
    study = parse_study(text, sub / "s.toml")
    plan = format_plan(study)
    assert "inputs from outside the study file's folder: ../shared lib$[x]/top.v, " + str(shared) in plan
    d = new_study_dir(study, tmp_path / "studies")
    copies = sorted(p.relative_to(d / "inputs").as_posix() for p in (d / "inputs" / "external").rglob("*.v"))
    # one folder per folder of origin, the file's own name kept: includes between them still resolve
    assert len(copies) == 2 and all(re.fullmatch(r"external/[0-9a-f]{10}/top\.v", c) for c in copies)
    prov = read_provenance(d)
    assert set(prov["external_inputs"]) == set(copies) and all(h for h in prov["inputs"].values())
    assert "../shared lib$[x]/top.v" in (d / "legality_report.md").read_text()
    stored = load_study(d / "inputs" / "study.toml", stored=True)  # resume reads the copies, not the originals
    (shared / "top.v").unlink()
    assert stored.resolve("../shared lib$[x]/top.v").read_text().startswith("module fake")


@pytest.mark.parametrize("given, needle", [("a\nb.v", "control character"), ("x" * 300 + ".v", "302 bytes"),
                                           ("a\x00b.v", "control character"), ("", "is empty")])
def test_unusable_paths_are_coded_errors(tmp_path, given, needle):
    bad = GOOD.replace('top = "fake"', f'top = "fake"\nrtl = [{given!r}]'.replace("'", '"'))
    bad = bad.replace("\\x00", "\\u0000")
    with pytest.raises(N2Error) as ei:
        parse_study(bad, tmp_path / "s.toml")
    [p] = ei.value.problems
    assert p.code == "N2-E109" and needle in p.message


def test_missing_file(tmp_path):
    with pytest.raises(N2Error) as ei:
        load_study(tmp_path / "nope.toml")
    assert ei.value.codes == ["N2-E109"]


def test_sample_studies_validate():
    for f in sorted((ROOT / "sample_studies").glob("*.toml")):
        load_study(f)


def test_fake_study_helper_is_valid(tmp_path):
    assert load_study(fake_study(tmp_path)).spec.stage_deps() == [[], [0], [0]]


def test_the_ray_executor_needs_ray_installed(tmp_path, monkeypatch):
    import importlib.util

    text = GOOD.replace('[[stages]]', '[execution]\nexecutor = "ray"\naddress = "auto"\n\n[[stages]]', 1)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    [p] = problems(text, tmp_path)
    assert p.code == "N2-E114" and p.path == "execution.executor" and "pip install 'noodle2[ray]'" in p.render()
    monkeypatch.setattr(importlib.util, "find_spec", real)
    if real("ray") is not None:
        assert parse_study(text, tmp_path / "s.toml").spec.execution.address == "auto"


def test_the_generic_template_is_one_text_in_every_design_study():
    blocks = {d: (ROOT / "sample_studies" / f"{d}.toml").read_text().split("# The generic template", 1)[1]
              for d in ("mac16", "alu32", "crc64", "sort8")}
    assert len(set(blocks.values())) == 1
    study = load_study(ROOT / "sample_studies" / "mac16.toml")
    assert sum(st.trials for st in study.spec.stages) == 100
    assert [st.name for st in study.spec.stages][:3] == ["repair", "restructure", "climb.1"]


def test_every_problem_is_reported_in_one_pass(tmp_path):
    """A newcomer fixes the whole file at once instead of one error per run."""
    bad = (GOOD.replace('trials = 4', 'trials = "four"')
           .replace("survivors = 1", "survivors = 9")
           .replace('"pin_swap"', '"pin_swapp"')
           .replace('name = "t"', 'name = "t"\ncolour = "blue"'))
    ps = problems(bad, tmp_path)
    got = {(p.code, p.path) for p in ps}
    assert {("N2-E102", "stages[0].trials"), ("N2-E104", "stages[1].survivors"),
            ("N2-E106", "stages[1].ecos[0]"), ("N2-E105", "study.colour")} <= got
    assert all(p.line for p in ps)


def test_physical_ecos_and_route_modes_are_checked_before_any_compute(tmp_path):
    route = GOOD.replace('[tool]\nkind = "command"\ncommand = ["true"]\n', "")
    route = route.replace('top = "fake"', 'top = "fake"\ntech = "osu018"\nnetlist = "n.v"').replace(
        'name = "t"', 'name = "t"\nsafety_domain = "sandbox"')
    (tmp_path / "n.v").write_text("module fake; endmodule\n")
    bad = route.replace('ecos = ["resize_critical"]', 'ecos = ["replace"]')
    assert [(p.code, p.path) for p in problems(bad, tmp_path)] == [("N2-E118", "stages[0].ecos[0]")]
    ok = route.replace('name = "b"\n', 'name = "b"\nmode = "route"\n').replace('"pin_swap"', '"reroute"')
    assert parse_study(ok, tmp_path / "s.toml").spec.stages[1].mode == "route"
    kept = ok.replace('mode = "route"\n', 'mode = "route"\nkeep_parents = true\n')
    assert [(p.code, p.path) for p in problems(kept, tmp_path)] == [("N2-E118", "stages[1].keep_parents")]
    resynth = ok.replace('"reroute"', '"resynth_cone"')
    assert ("N2-E118", "stages[1].ecos[0]") in {(p.code, p.path) for p in problems(resynth, tmp_path)}
    lib = tmp_path / "my.lib"
    lib.write_text("library (x) { }\n")
    own = ok.replace('tech = "osu018"', f'liberty = ["{lib}"]')
    ps = problems(own, tmp_path)
    assert ("N2-E118", "stages[1].mode") in {(p.code, p.path) for p in ps}
    assert "design.tech" in next(p for p in ps if p.code == "N2-E118").render()


def test_an_objective_opensta_does_not_measure_is_refused_with_a_suggestion(tmp_path):
    """`objective = "wns"` with the hint's own directions used to validate, then block the base case (#22.5)."""
    path = ROOT / "sample_studies" / "quickstart.toml"
    text = path.read_text().replace('objective = "wns_ps"', 'objective = "wns"\ndirections = { wns = "max" }')
    with pytest.raises(N2Error) as ei:
        parse_study(text, path)
    [p] = [p for p in ei.value.problems if p.code == "N2-E113"]
    assert "'wns' is not one OpenSTA trials measure" in p.message and "did you mean 'wns_ps'" in p.hint
    # a command tool's metrics file may hold any name: there, directions are enough
    cmd = GOOD + '\n[ranking]\nobjective = "my_score"\ndirections = { my_score = "max" }\n'
    assert parse_study(cmd, tmp_path / "s.toml").spec.ranking.objective == "my_score"


def test_a_goal_on_a_metric_trials_do_not_measure_is_refused(tmp_path):
    """#21: [study] goal names metrics the way [ranking] does, checked the same way."""
    path = ROOT / "sample_studies" / "quickstart.toml"
    text = path.read_text().replace("[study]\n", "[study]\ngoal = { wns = 0 }\n", 1)
    with pytest.raises(N2Error) as ei:
        parse_study(text, path)
    [p] = [p for p in ei.value.problems if p.path == "study.goal"]
    assert "goal metric 'wns'" in p.message and "did you mean 'wns_ps'" in p.hint
    ok = parse_study(path.read_text().replace("[study]\n", "[study]\ngoal = { wns_ps = 0 }\n", 1), path)
    assert ok.spec.study.goal == {"wns_ps": 0}


def test_typos_get_a_did_you_mean(tmp_path):
    """#22.21: `survivers`, `executon`, `clone_drivr` name the key or ECO they meant."""
    path = ROOT / "sample_studies" / "quickstart.toml"
    hints = {}
    for text in (path.read_text().replace("survivors = 3", "survivers = 3", 1).replace("[execution]", "[executon]"),
                 path.read_text().replace('"clone_driver"', '"clone_drivr"', 1)):
        with pytest.raises(N2Error) as ei:
            parse_study(text, path)
        hints.update({p.message: p.hint for p in ei.value.problems})
    assert hints["unknown key 'survivers'"] == "did you mean 'survivors'?"
    assert hints["unknown key 'executon'"] == "did you mean 'execution'?"
    assert hints["unknown ECO 'clone_drivr'"].startswith("did you mean 'clone_driver'?")
