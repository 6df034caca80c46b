"""Locked means locked (#17, points 1-3): nothing a study file, its SDC or its Liberty holds
reaches OpenSTA's Tcl as script, and what runs code by design is listed and, in `locked`,
refused unless the study names it.  Against the real `sta`."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from noodle2.engine.errors import N2Error
from noodle2.engine.policy.safety import legality_report
from noodle2.engine.quote import tcl_array, tcl_word
from noodle2.engine.run.engine import Engine
from noodle2.engine.run.studydir import new_study_dir
from noodle2.engine.study.load import load_study, parse_study
from noodle2.engine.tools import make_tool
from noodle2.engine.tools.synthesis.yosys import synthesise
from noodle2.engine.tools.tech.liberty import Cell, LibertyError, Library, tcl_facts
from noodle2.engine.tools.timing.opensta import ECO_LIB
from noodle2.engine.tools.timing.sdc import SDC_COMMANDS, forbidden
from tests.conftest import ROOT, fake_study

pytestmark = pytest.mark.skipif(shutil.which("sta") is None or shutil.which("yosys") is None,
                                reason="needs OpenSTA and Yosys (bash .ci/setup installs them)")
LIB = Path("/usr/share/qflow/tech/osu018/osu018_stdcells.lib")
POC = """create_clock -name clk -period 4.0 [get_ports clk]
set e [list {[exec sh -c {touch PWNED}]} 2 3]
if {1} { catch { create_generated_clock -name g -source [get_ports clk] -edges $e [get_ports clk] } }
"""


@pytest.fixture(scope="module")
def mac8(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("mac8")
    synthesise([ROOT / "sample_studies/designs/mac8/mac8.v"], "mac8", LIB, d)
    return d / "mac8.v"


def run_sta(work: Path, body: str, netlist: Path) -> str:
    """`body` after the ECO library, the Liberty and mac8 are loaded; stdout and stderr."""
    script = work / "t.tcl"
    script.write_text(f"{ECO_LIB.read_text()}\nread_liberty {tcl_word(str(LIB))}\n"
                      f"read_verilog {tcl_word(str(netlist))}\nlink_design mac8\n{body}\nexit\n")
    r = subprocess.run(["sta", "-no_init", "-no_splash", str(script)], cwd=work, capture_output=True, text=True,
                       timeout=120)
    return r.stdout + r.stderr


def read_safe(path: str) -> str:
    return f"n2_read_sdc_safe {tcl_word(path)} {{{' '.join(sorted(SDC_COMMANDS))}}}"


# --- 1. the SDC-only reader -------------------------------------------------------------------

def test_validate_finds_commands_in_bodies_and_in_braced_data():
    assert forbidden(POC) == [(2, "exec")]
    hidden = """foreach p {a b} { set_load 0.1 [get_ports $p]; exec rm -rf x }
switch $m { a { open f } default { set y 1 } }
while {[source evil.tcl]} { }
proc p {} { glob * }
set_input_delay 1 -clock clk {req_msg[*] data[3]}
$cmd arg
"""
    assert sorted(forbidden(hidden)) == [(1, "exec"), (2, "open"), (3, "source"), (4, "glob"), (6, "$cmd")]


def test_the_generated_clock_escape_runs_nothing_even_inside_catch(tmp_path, mac8):
    (tmp_path / "x.sdc").write_text(POC)
    out = run_sta(tmp_path, f"{read_safe('x.sdc')}\nreport_checks -format end", mac8)
    assert not (tmp_path / "PWNED").exists()
    assert re.search(r"Error: SDC x\.sdc: create_generated_clock: argument 6 .* refused", out), out
    assert "clk" in out  # the rest of the SDC was read: the clock exists


def test_a_study_whose_sdc_hides_the_escape_is_refused_by_validate_and_blocked_at_run(tmp_path):
    d = tmp_path / "study"
    (d / "designs").mkdir(parents=True)
    shutil.copy(ROOT / "sample_studies/designs/mac8/mac8.v", d / "designs")
    (d / "designs/mac8.sdc").write_text(POC)
    text = (ROOT / "sample_studies/quickstart.toml").read_text().replace("designs/mac16/mac16", "designs/mac8")
    text = text.replace('top = "mac16"', 'top = "mac8"').replace('safety_domain = "guarded"', 'safety_domain = "locked"')
    text = text[:text.index("[[stages]]")] + '[[stages]]\nname = "s"\ntrials = 1\nsurvivors = 1\necos = ["pin_swap"]\n'
    text = text.replace('ecos = ["pin_swap"]', 'ecos = ["resize_critical"]')
    (d / "study.toml").write_text(text)
    with pytest.raises(N2Error) as ei:
        load_study(d / "study.toml")
    assert [p.code for p in ei.value.problems] == ["N2-E115"] and "'exec'" in ei.value.render()
    # validation is one gate; the reader is the other: hand the engine the SDC behind validate's back
    (d / "designs/mac8.sdc").write_text("create_clock -name clk -period 4.0 [get_ports clk]\n")
    study = load_study(d / "study.toml")
    sd = new_study_dir(study, tmp_path / "studies")
    (sd / "inputs/designs/mac8.sdc").write_text(POC.replace("touch PWNED", f"touch {tmp_path}/PWNED"))
    eng = Engine(sd, study, make_tool(study, sd))
    assert anyio.run(eng.run) == "blocked"
    assert not (tmp_path / "PWNED").exists() and not any(sd.rglob("PWNED"))
    assert "refused" in eng.state.base().failure["reason"] + eng.state.base().failure["excerpt"]


def test_only_words_that_no_evaluation_can_run_cross_the_reader(tmp_path, mac8):
    """Every printable and control character, in a name, in a bus index and in a command
    substitution: n2_sdc_check lets through exactly the documented alphabet, and what it lets
    through runs nothing when OpenSTA-style code evaluates it (expr, eval, subst, if): a bus
    index can only name a command of digits, * ? and :, and sta has none.  One sta run."""
    values = []
    for c in map(chr, range(1, 127)):
        values += [f"in{c}x", f"in[{c}]", f"in\\[{c}\\]", f"in[exec touch HIT{ord(c)}]", f"{c}"]
    values += ["1.5", "-2e-3", "-edges", "1 2 3", "{1 2} 3", "[exec touch HIT]", "_40ab_p_Port", "a b\\"]
    hexes = " ".join(v.encode().hex() for v in values)
    canaries = " ".join(["in", "a", "x", "inx", "exec_", "touch", "list_", "in1", "a1"])
    body = f"""set n2_hits 0
puts "N2INDEXCMDS [llength [lsearch -all -regexp [info commands] {{^[0-9*?:]*$}}]]"
foreach n {{{canaries}}} {{ proc $n args {{ global n2_hits; incr n2_hits }} }}
foreach h {{{hexes}}} {{
  set v [encoding convertfrom utf-8 [binary decode hex $h]]
  set ok [expr {{[n2_sdc_check $v] eq {{}}}}]
  puts "N2V $h $ok"
  if {{$ok}} {{
    set v [n2_sdc_canon $v]
    catch {{expr $v}}; catch {{eval "list $v"}}; catch {{subst $v}}; catch {{if $v {{}}}}
  }}
}}
puts "N2HITS $n2_hits"
"""
    out = run_sta(tmp_path, body, mac8)
    verdict = {bytes.fromhex(h).decode(): ok == "1" for h, ok in re.findall(r"^N2V (\S*) ([01])$", out, re.M)}
    assert len(verdict) == len(set(values)), out[-2000:]
    assert "N2INDEXCMDS 0" in out and "N2HITS 0" in out and not list(tmp_path.glob("HIT*"))
    script_chars = set('${}";#') | {chr(c) for c in range(0, 32) if chr(c) not in " \t\n\v\f\r"} | {chr(127)}
    for v, ok in verdict.items():
        if v == "{1 2} 3":  # a nested list: its braces are list structure, its elements plain
            assert ok
        elif set(v) & script_chars or re.search(r"\[(?![0-9*?:]*\\*\])", v) or "exec" in v:
            assert not ok, f"{v!r} should have been refused"
    good = ["in3x", "in[3]", "in[*]", "in\\[3\\]", "1.5", "-2e-3", "-edges", "1 2 3", "in:x", "in/x", "in.x"]
    assert all(verdict[v] for v in good), {v: verdict[v] for v in good}
    for c in '${}";#':
        assert not verdict[f"in{c}x"], c


def test_what_the_reader_lets_pass_still_constrains_the_design(tmp_path, mac8):
    """Numbers, lists, objects, bus patterns, all_inputs -no_clocks: the ORFS style works."""
    (tmp_path / "orfs.sdc").write_text("""current_design mac8
set clk_name core_clock
set clk_period 3.5
set clk_port [get_ports clk]
create_clock -name $clk_name -period $clk_period -waveform [list 0 [expr {$clk_period / 2}]] $clk_port
set non_clock_inputs [all_inputs -no_clocks]
set_input_delay [expr $clk_period * 0.2] -clock $clk_name $non_clock_inputs
set_output_delay 0.7 -clock [get_clocks $clk_name] [all_outputs]
set_load 0.01 [get_ports {acc[*]}]
""")
    out = run_sta(tmp_path, f"{read_safe('orfs.sdc')}\nputs \"N2CLK [get_property [get_clocks core_clock] period]\"\n"
                            "puts \"N2IN [llength [all_inputs]]\"\nreport_checks -path_delay max -format end", mac8)
    assert "Error" not in out, out
    assert "N2CLK 3.5" in out and "Note: SDC: all_inputs -no_clocks" in out
    assert "core_clock" in out


def test_the_forwarded_sdc_commands_evaluate_no_argument_as_script(tmp_path):
    """The audit, automated: every OpenSTA proc an SDC command can reach is read from the
    running `sta`.  None may eval, uplevel or subst what it was given (`eval get_x $args` of a
    list is safe: list quoting survives eval), and an unbraced expr over an argument is allowed
    only where the value was checked as a number first, or where the reader checks it
    (create_generated_clock -edges: only numbers, objects and plain names pass n2_sdc_call)."""
    script = ('foreach p [concat [info procs ::*] [info procs ::sta::*]] {\n'
              '  puts "N2PROC [namespace tail $p] [binary encode hex [encoding convertto utf-8 [info body $p]]]"\n'
              '}\nexit\n')
    (tmp_path / "dump.tcl").write_text(script)
    r = subprocess.run(["sta", "-no_init", "-no_splash", "dump.tcl"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60)
    procs: dict[str, str] = {}
    for name, body in re.findall(r"^N2PROC (\S+) ([0-9a-f]*)$", r.stdout, re.M):
        procs[name] = procs.get(name, "") + "\n" + bytes.fromhex(body).decode()
    assert len(procs) > 300, r.stdout[-500:]
    seen, todo = set(), sorted(SDC_COMMANDS)
    while todo:  # the call closure of the forwarded commands
        c = todo.pop()
        if c in seen or c not in procs:
            continue
        seen.add(c)
        todo += [w for w in re.findall(r"(?<![-$\w])[A-Za-z_]\w*", procs[c]) if w in procs and w not in seen
                 and w not in ("source", "source_")]  # `-source` is a flag, not a call
    risky: dict[str, list[str]] = {}
    for c in sorted(seen):
        for line in procs[c].splitlines():
            code = line.split("#", 1)[0]
            if re.search(r"\b(uplevel|subst)\b", code) or (re.search(r"\beval\b", code)
                                                            and not re.search(r"eval get_\w+ \$args", code)) \
                    or re.search(r"expr [^{\s]", code):
                risky.setdefault(c, []).append(line.strip())
    checked_first = {  # unbraced expr over values OpenSTA has already checked with check_float & co
        "create_clock": {"set edge [expr $edge - $period]", "set edge [expr $edge + $period]",
                         "if { $edge > [expr $period * 2] } {", "set waveform [list 0 [expr $period / 2.0]]",
                         "if { [expr [llength $wave_arg] % 2] != 0 } {"},
        "create_generated_clock": {"set prev_edge [expr [lindex $edges 0] - 1]"},  # the reader checks these
        "find_liberty_libraries_matching": {"set pattern2 [string range $pattern [expr $ix + 4] end]"},
        "parse_redirect_args": None,  # only `source` (not forwarded) calls it
    }
    left = {c: [ln for ln in lines if checked_first.get(c) is not None and ln not in checked_first[c]
                or c not in checked_first] for c, lines in risky.items()}
    assert {c: v for c, v in left.items() if v} == {}, risky
    assert "create_generated_clock" in risky  # the audit sees the path the reader closes


# --- 2. what a Liberty says reaches Tcl only as data -------------------------------------------

def test_every_printable_character_in_liberty_names_round_trips_through_sta(tmp_path):
    """Cell and pin names holding each printable character reach sta's Tcl as exactly those names."""
    cells = {}
    for k, c in enumerate(map(chr, range(32, 127))):
        name, pin = f"C{k}{c}x", f"A{c}"
        cells[name] = Cell(name, 1.0, (pin,), ("Y",), pin, 0b10, {"Y": 0b10}, False, 1.0, (), {"Y": 0.5})
    lib = Library("lib", cells, {n: (n,) for n in cells}, (), ())
    hexed = "binary encode hex [encoding convertto utf-8 {}]"
    (tmp_path / "f.tcl").write_text(tcl_facts(lib) + f"""
foreach n [array names n2_io] {{
  puts "N2IO [{hexed.format('$n')}] [{hexed.format('[lindex $n2_io($n) 0 0]')}] [{hexed.format('[lindex $n2_family($n) 0]')}]"
}}
puts "N2CAP [array size n2_maxcap]"
exit
""")
    r = subprocess.run(["sta", "-no_init", "-no_splash", "f.tcl"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60)
    got = {bytes.fromhex(a).decode(): (bytes.fromhex(b).decode(), bytes.fromhex(c).decode())
           for a, b, c in re.findall(r"^N2IO (\S+) (\S+) (\S+)$", r.stdout, re.M)}
    assert set(got) == set(cells), sorted(set(cells) ^ set(got))
    assert all(got[n][0] == cells[n].inputs[0] for n in cells)
    assert all(got[n][1] == n for n in cells)
    assert f"N2CAP {len(cells)}" in r.stdout and "Error" not in r.stdout + r.stderr


def test_a_table_of_names_reaches_sta_as_exactly_those_keys_and_values(tmp_path):
    """tcl_array (the SPEF's nets, routed wire capacitances, the Liberty's facts): keys holding
    every printable character, as net names from a SPEF or Yosys do, come back as they went in."""
    table = {f"n{k}{c}[3]/x{c}": f"v{c}" for k, c in enumerate(map(chr, range(32, 127)))}
    table["{"], table["}"], table["a\\"], table["$x [exec touch PWNED]"] = "1", "2", "3", "4"
    hexed = "binary encode hex [encoding convertto utf-8 {}]"
    (tmp_path / "f.tcl").write_text("\n".join(tcl_array("t", ((k, tcl_word(v)) for k, v in table.items()))) + f"""
foreach k [array names t] {{ puts "KV [{hexed.format('$k')}] [{hexed.format('$t($k)')}]" }}
exit
""")
    r = subprocess.run(["sta", "-no_init", "-no_splash", "f.tcl"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60)
    got = {bytes.fromhex(a).decode(): bytes.fromhex(b).decode() for a, b in re.findall(r"^KV (\S*) (\S*)$", r.stdout, re.M)}
    assert got == table and "Error" not in r.stdout + r.stderr and not (tmp_path / "PWNED").exists()
    assert tcl_array("t", []) == []  # no pairs: no array, as when each element had its own `set`


def test_a_liberty_name_with_a_control_character_is_refused_and_the_library_name_never_reaches_tcl(tmp_path):
    evil = "osu018\nexec sh -c {touch PWNED}\n#"
    lib = Library(evil, {"INVX1": Cell("INVX1", 1.0, ("A",), ("Y",), "!A", 0b01, {"Y": 0b01}, False, 1.0, ())},
                  {"INVX1": ("INVX1",)}, (), ("INVX1",))
    facts = tcl_facts(lib)
    assert "exec" not in facts and "osu018" not in facts
    for bad in ("\n", "\r", "\x00", "\x1b", "\x7f", "\u2028"):
        cell = f"INV{bad}X1"
        with pytest.raises(LibertyError):
            tcl_facts(Library("l", {cell: Cell(cell, 1.0, ("A",), ("Y",), "!A", 1, {"Y": 1}, False, 1.0, ())},
                              {}, (), ()))


# --- 3. what runs code by design is listed, and locked refuses it unless allowed ----------------

FEATURES = {
    "tool_command": "",
    "notify": '[notify]\ncommand = ["true"]\n',
    "webhook": '[notify]\nwebhook = "http://127.0.0.1:9/hook"\n',
    "custom_ecos": '[[custom.ecos]]\nname = "mine"\neco_class = "topology_neutral"\ndescription = "d"\ntcl = "return 0"\n',
}


@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_locked_refuses_code_features_unless_the_study_allows_them(tmp_path, feature):
    stages = '[[stages]]\nname = "s"\ntrials = 1\nsurvivors = 1\necos = ["resize_critical"]\n'
    if feature == "custom_ecos":
        stages = stages.replace('"resize_critical"', '"mine"')
    path = fake_study(tmp_path, stages=stages, extra=FEATURES[feature])
    allow = ["tool_command"] if feature != "tool_command" else []
    text = path.read_text().replace('allow = ["tool_command"]', f"allow = {allow!r}".replace("'", '"'))
    text = text.replace('seed = 11', 'seed = 11\nsafety_domain = "locked"')
    with pytest.raises(N2Error) as ei:
        parse_study(text, path)
    [p] = [p for p in ei.value.problems if p.code == "N2-E122"]
    assert f"[safety] allow names '{feature}'" in p.message and p.hint and feature in p.hint
    ok = parse_study(text.replace(f"allow = {allow!r}".replace("'", '"'),
                                  f'allow = ["tool_command", "{feature}"]'), path)
    report = legality_report(ok.spec)
    assert "runs code or sends data by design:" in report and "(allowed by [safety] allow)" in report
    assert report.rstrip().endswith("verdict: LEGAL")


def test_the_legality_report_of_a_guarded_study_lists_what_runs_code(tmp_path):
    path = fake_study(tmp_path, extra=FEATURES["notify"] + FEATURES["webhook"].replace("[notify]\n", ""))
    report = legality_report(load_study(path).spec)
    section = report.split("runs code or sends data by design:\n", 1)[1].split("\n\n", 1)[0]
    assert [ln.split()[1] for ln in section.splitlines()] == ["[tool]", "[notify]", "[notify]"]
    assert "runs the program 'true' when the study ends" in section and "POSTs the study's results" in section


def test_a_notify_command_gets_a_minimal_environment(tmp_path):
    out = tmp_path / "env.txt"
    path = fake_study(tmp_path, stages='[[stages]]\nname = "s"\ntrials = 1\nsurvivors = 1\necos = ["resize_critical"]\n',
                      extra=f'[notify]\ncommand = ["sh", "-c", "env > {out}"]\nreport = false\n')
    import os

    env = dict(os.environ, PYTHONPATH=str(ROOT), N2_TEST_SECRET="hunter2", AWS_SECRET_ACCESS_KEY="x")
    r = subprocess.run([sys.executable, "-m", "noodle2.console.cli", "run", str(path), "--unattended", "--study-dir",
                        str(tmp_path / "d")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    names = {line.split("=", 1)[0] for line in out.read_text().splitlines() if "=" in line}
    assert "N2_TEST_SECRET" not in names and "AWS_SECRET_ACCESS_KEY" not in names and "PYTHONPATH" not in names
    assert {"N2_NOTIFY_TRIGGER", "N2_NOTIFY_STATUS", "N2_NOTIFY_STUDY_DIR", "PATH"} <= names
    assert names <= {"N2_NOTIFY_TRIGGER", "N2_NOTIFY_STATUS", "N2_NOTIFY_STUDY_DIR", "PATH", "HOME", "LANG", "LC_ALL",
                     "TZ", "TMPDIR", "PWD", "SHLVL", "_"}  # the last three: set by sh itself
