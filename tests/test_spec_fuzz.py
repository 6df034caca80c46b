"""Fuzzed inputs end in a result or coded errors, never an exception: ≥600 mutated study files,
hostile paths, control files, and damaged journals."""
from __future__ import annotations

import copy
import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from noodle2.engine.errors import N2Error
from noodle2.engine.policy.planning import plan_stage
from noodle2.engine.study.load import parse_study
from noodle2.engine.study.plan import format_plan

BASE = {
    "study": {"name": "fuzz", "seed": 3, "tags": ["a"], "safety_domain": "guarded"},
    "design": {"top": "mac", "rtl": ["d/mac.v"], "sdc": "d/mac.sdc"},
    "execution": {"max_parallel": 2, "soft_timeout_s": 30.0, "retries": 1},
    "ranking": {"objective": "wns_ps"},
    "stages": [
        {"name": "s0", "trials": 8, "survivors": 3, "ecos": ["resize_critical", "buffer_fanout"],
         "params": {"resize_critical": {"paths": {"min": 1, "max": 5}}}},
        {"name": "s1", "trials": 4, "survivors": 1, "ecos": ["pin_swap"], "after": ["s0"]},
    ],
}

WEIRD = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=True), st.booleans(),
    st.text(max_size=12), st.just("../../../etc/passwd"), st.just("/abs/path.v"), st.just("no_such_eco"),
    st.lists(st.integers(-5, 5), max_size=3), st.just({"min": 5, "max": 1}), st.just([]), st.just({}),
    st.just("d/" + "x" * 300 + ".v"), st.just("d/mac\x00.v"), st.just("d/mac\n!rm -rf .v"), st.just("{foo}"),
    st.just("d/ma}c.v"), st.just("$HOME/[exec].v"), st.just("d"), st.just(""), st.just("\u2028"),
)


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(v), repr(v))
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f'"{k}" = {toml_value(x)}' for k, x in v.items()) + "}"
    raise TypeError(v)


def to_toml(d: dict) -> str:
    out = []
    for k, v in d.items():
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for item in v:
                out.append(f"[[{k}]]")
                out += [f'"{kk}" = {toml_value(vv)}' for kk, vv in item.items()]
        elif isinstance(v, dict):
            out.append(f"[{k}]")
            out += [f'"{kk}" = {toml_value(vv)}' for kk, vv in v.items()]
        else:
            out.insert(0, f'"{k}" = {toml_value(v)}')
    return "\n".join(out) + "\n"


def paths(d, prefix=()):
    yield prefix
    if isinstance(d, dict):
        for k, v in d.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            yield from paths(v, prefix + (i,))


@st.composite
def mutated(draw):
    d = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        ps = [p for p in paths(d) if p]
        p = draw(st.sampled_from(ps))
        parent = d
        for k in p[:-1]:
            parent = parent[k]
        op = draw(st.sampled_from(["delete", "replace", "add_key", "huge", "negative"]))
        try:
            if op == "delete":
                del parent[p[-1]]
            elif op == "replace":
                parent[p[-1]] = copy.deepcopy(draw(WEIRD))
            elif op == "add_key" and isinstance(parent, dict):
                parent[draw(st.sampled_from(["trails", "surviors", "x", "after", "params"]))] = copy.deepcopy(draw(WEIRD))
            elif op == "huge":
                parent[p[-1]] = 10**9
            elif op == "negative":
                parent[p[-1]] = -draw(st.integers(1, 10**6))
        except (KeyError, IndexError, TypeError):
            pass
    try:
        text = to_toml(d)
    except TypeError:
        text = "[study\nname = 'broken"
    if draw(st.booleans()) and draw(st.booleans()):  # raw text damage
        i = draw(st.integers(0, max(len(text) - 1, 0)))
        text = text[:i] + draw(st.sampled_from(["[", "]", '"', "=", "\n[[stages]]\n", "\x00", "#"])) + text[i + 1:]
    return text


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=mutated())
def test_mutated_study_files_plan_or_coded_error(text, tmp_path_factory):
    root = _design_root(tmp_path_factory)
    try:
        study = parse_study(text, root / "study.toml")
    except N2Error as e:
        assert e.problems
        for p in e.problems:
            assert re.fullmatch(r"N2-E\d{3}", p.code), p
            assert p.render().startswith(p.code)
        return
    assert "trials" in format_plan(study)
    for i, stage in enumerate(study.spec.stages):  # the plan itself must be computable
        plan = plan_stage(study.spec, i, ["base"], stage.ecos)
        assert len(plan) == stage.trials


_ROOT: list[Path] = []


def _design_root(factory) -> Path:
    if not _ROOT:
        root = factory.mktemp("fuzz")
        (root / "d").mkdir()
        (root / "d" / "mac.v").write_text("module mac; endmodule\n")
        (root / "d" / "mac.sdc").write_text("create_clock -period 4 [get_ports clk]\n")
        _ROOT.append(root)
    return _ROOT[0]


def test_base_of_fuzz_is_valid(tmp_path_factory):
    study = parse_study(to_toml(BASE), _design_root(tmp_path_factory) / "study.toml")
    assert study.spec.stages[1].after == ["s0"]


# --- control files: any bytes, never an exception, always removed --------------------------------

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=300), st.builds(lambda v: __import__("orjson").dumps(v), st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=10) | st.sampled_from(["stop", "pause"]),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(["request", "target", "x"]), c, max_size=3),
    max_leaves=6))))
def test_any_control_file_is_a_request_or_a_refusal(tmp_path_factory, body):
    from noodle2.engine.run.control import ControlInbox

    c = tmp_path_factory.mktemp("control")
    (c / "r.json").write_bytes(body)
    [(name, req, _, why)] = ControlInbox(c, quiet_s=0).poll(0.0)
    assert name == "r.json" and (req is None) == bool(why)
    assert req is None or req.request in ("pause", "resume", "stop", "cancel")
    assert not list(c.iterdir())


# --- journals: any damage is a coded error or a readable prefix -----------------------------------

_JOURNAL: list[bytes] = []


def _good_journal() -> bytes:
    if not _JOURNAL:
        import tempfile

        from tests.console_fixtures import synthetic_study

        d = synthetic_study(Path(tempfile.mkdtemp()))
        _JOURNAL.append((d / "journal.jsonl").read_bytes())
    return _JOURNAL[0]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(st.sampled_from(["flip", "delete", "insert", "dup", "truncate", "swap"]),
                              st.integers(0, 10**6), st.binary(min_size=1, max_size=8)), min_size=1, max_size=4))
def test_damaged_journals_read_or_fail_with_n2_e205(tmp_path_factory, ops):
    from noodle2.console.follow import StudyFollower
    from noodle2.engine.journal.store import JOURNAL, recover

    data = bytearray(_good_journal())
    for op, at, junk in ops:
        if not data:
            break
        i = at % len(data)
        if op == "flip":
            data[i] ^= 1 << (at % 8)
        elif op == "delete":
            del data[i:i + len(junk)]
        elif op == "insert":
            data[i:i] = junk
        elif op in ("dup", "swap"):
            lines = bytes(data).split(b"\n")
            k = at % len(lines)
            if op == "dup":
                lines.insert(k, lines[k])
            else:
                lines[k], lines[k - 1] = lines[k - 1], lines[k]
            data = bytearray(b"\n".join(lines))
        else:
            del data[i:]
    d = tmp_path_factory.mktemp("j")
    (d / JOURNAL).write_bytes(bytes(data))
    for read in (lambda: recover(d).state, lambda: StudyFollower(d).poll()):
        try:
            read()
        except N2Error as e:
            assert e.codes == ["N2-E205"] and "line" in e.render()


# --- SDC and Liberty shapes (#17): hostile text never runs, never crashes the reader ------------

HOSTILE = st.sampled_from(["[exec touch PWNED]", "{[exec touch PWNED]} 2 3", "$env(HOME)", "a;exec touch PWNED",
                           "a\nexec touch PWNED", "\\[exec touch PWNED\\]", "[open PWNED w]", "{*}[list exec touch PWNED]",
                           "req[*]", "data\\[3\\]", "1e400", "-1", "0x10", "", "{", "}", '"', "#", "clk", "in*"])
SDC_CMD = st.sampled_from(["create_clock -name c -period", "create_generated_clock -name g -source [get_ports clk] -edges",
                           "set_input_delay 1 -clock clk", "set_output_delay", "get_ports", "set_load", "get_cells -filter",
                           "set_false_path -from", "all_inputs", "set_clock_groups -group", "delete_from_list [all_inputs]"])
WRAP = st.sampled_from(["{}", "catch {{ {} }}", "if {{1}} {{ {} }}", "foreach x {{1}} {{ {} }}", "set v [list {}]"])


def _sdc_line(cmd: str, args: list[str], wrap: str) -> str:
    """Arguments raw, braced or quoted, so the hostile text lands in every kind of Tcl word."""
    from noodle2.engine.quote import tcl_word

    words = []
    for k, a in enumerate(args):
        nl = "\n" in a
        words.append(a if k % 3 == 0 and not nl else "{" + a + "}" if k % 3 == 1 and not nl
                     else tcl_word(a.replace("\n", " ")) or "{}")
    return wrap.format(cmd + " " + " ".join(words))


_MAC8: list[Path] = []


def _mac8(factory) -> Path:
    if not _MAC8:
        from noodle2.engine.tools.synthesis.yosys import synthesise

        d = factory.mktemp("mac8")
        synthesise([Path(__file__).resolve().parents[1] / "sample_studies/designs/mac8/mac8.v"], "mac8",
                   Path("/usr/share/qflow/tech/osu018/osu018_stdcells.lib"), d)
        _MAC8.append(d / "mac8.v")
    return _MAC8[0]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.tuples(SDC_CMD, st.lists(HOSTILE, max_size=3), WRAP), min_size=1, max_size=6))
def test_hostile_sdc_text_runs_nothing_through_the_real_reader(tmp_path_factory, lines):
    import shutil
    import subprocess

    from noodle2.engine.quote import tcl_word
    from noodle2.engine.tools.timing.opensta import ECO_LIB
    from noodle2.engine.tools.timing.sdc import SDC_COMMANDS, forbidden

    if shutil.which("sta") is None:
        return
    text = "create_clock -name clk -period 4 [get_ports clk]\n" + "\n".join(_sdc_line(*x) for x in lines) + "\n"
    forbidden(text)  # the static scan never raises
    work = tmp_path_factory.mktemp("sdc")
    (work / "x.sdc").write_text(text)
    (work / "t.tcl").write_text(
        f"{ECO_LIB.read_text()}\nread_liberty /usr/share/qflow/tech/osu018/osu018_stdcells.lib\n"
        f"read_verilog {tcl_word(str(_mac8(tmp_path_factory)))}\nlink_design mac8\n"
        f"n2_read_sdc_safe x.sdc {{{' '.join(sorted(SDC_COMMANDS))}}}\nputs N2DONE\nexit\n")
    r = subprocess.run(["sta", "-no_init", "-no_splash", "t.tcl"], cwd=work, capture_output=True, text=True, timeout=120)
    assert not (work / "PWNED").exists(), text
    assert r.returncode == 0 and "N2DONE" in r.stdout, (text, r.stdout[-500:], r.stderr[-500:])
    errors = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.startswith("Error")]
    assert all(ln.startswith("Error: SDC x.sdc:") for ln in errors), errors


@settings(max_examples=40, deadline=None)
@given(lib=st.text(max_size=20), cell=st.text(min_size=1, max_size=12), pin=st.text(min_size=1, max_size=6))
def test_any_liberty_names_are_quoted_or_refused(lib, cell, pin):
    import subprocess
    import tempfile

    from noodle2.engine.tools.tech.liberty import Cell, LibertyError, Library, tcl_facts

    c = Cell(cell, 1.0, (pin,), ("Y",), pin, 0b10, {"Y": 0b10}, False, 1.0, (), {"Y": 1.0})
    try:
        facts = tcl_facts(Library(lib, {cell: c}, {cell: (cell,)}, (cell,), ()))
    except LibertyError:
        from noodle2.engine.quote import control_chars

        assert control_chars(cell + pin)
        return
    with tempfile.TemporaryDirectory() as work:
        Path(work, "f.tcl").write_text(facts + "\nputs \"N2OK [array size n2_family] [llength $n2_buffers]\"\nexit\n")
        r = subprocess.run(["sta", "-no_init", "-no_splash", "f.tcl"], cwd=work, capture_output=True, text=True,
                           timeout=60)
        assert "N2OK 1 1" in r.stdout and not r.stderr.strip(), (lib, cell, pin, r.stdout, r.stderr)
        assert sorted(p.name for p in Path(work).iterdir()) == ["f.tcl"]
