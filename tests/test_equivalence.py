"""Every promoted netlist is proven equivalent to its parent.  The checker proves what ECOs
change (resizes, buffers, inverter pairs, clones, swaps, rewrites of equal function), and
catches what they must not (a non-commutative swap, a changed function, a floating pin) with a
counterexample; ECO'd netlists read back through Yosys unchanged."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from noodle2.engine.tools.proof.equiv import parse_netlist, prove, structural
from noodle2.engine.tools.tech.liberty import load

pytestmark = pytest.mark.skipif(shutil.which("sta") is None or shutil.which("yosys") is None,
                                reason="needs OpenSTA and Yosys (bash .ci/setup installs them)")


@pytest.fixture
def mac16(bench):
    b = bench("mac16")
    return b, b.base()[1] / "mac16.v"


def _check(b, parent, text, tmp_path, name):
    child = tmp_path / f"{name}.v"
    child.write_text(text)
    return prove(parent, child, b.tool.libs, load(b.tool.libs[0]), tmp_path / name)


def test_catches_a_non_commutative_swap_with_a_counterexample(mac16, tmp_path):
    b, parent = mac16
    text = parent.read_text()
    m = re.search(r"OAI21X1 (\S+) \(\s*\.A\(([^)]*)\),\s*\.B\(([^)]*)\),\s*\.C\(([^)]*)\)", text)
    swapped = f"OAI21X1 {m.group(1)} (.A({m.group(4)}), .B({m.group(3)}), .C({m.group(2)})"
    out = _check(b, parent, text[:m.start()] + swapped + text[m.end():], tmp_path, "bad")
    assert not out.proven and out.method == "sat" and "counterexample" in out.detail
    cex = (tmp_path / "bad" / "counterexample.txt").read_text()
    assert "gold:register" in cex and "gate:register" in cex and "in:in " in cex
    # A and B of an OAI21 do commute: that swap is proven without SAT
    commuted = f"OAI21X1 {m.group(1)} (.A({m.group(3)}), .B({m.group(2)}), .C({m.group(4)})"
    ok = _check(b, parent, text[:m.start()] + commuted + text[m.end():], tmp_path, "good")
    assert ok.proven and ok.method == "structural"


@pytest.mark.parametrize("damage", ["nand_to_nor", "floating_input"])
def test_catches_a_changed_function_and_a_floating_pin(mac16, tmp_path, damage):
    b, parent = mac16
    text = parent.read_text()
    if damage == "nand_to_nor":
        m = re.search(r"NAND2X1 (\S+) \(", text)
        text = text[:m.start()] + f"NOR2X1 {m.group(1)} (" + text[m.end():]
    else:
        m = re.search(r"(NAND2X1 \S+ \(\s*)\.A\([^)]*\),", text)
        text = text[:m.start()] + m.group(1) + text[m.end():]
    out = _check(b, parent, text, tmp_path, damage)
    assert not out.proven
    if damage == "floating_input":  # refused before any solver: tied to 0 it might look equal
        assert out.method == "structural" and "is not connected" in out.detail
    else:
        assert "counterexample" in out.detail and (tmp_path / damage / "counterexample.txt").exists()


def test_proves_an_equal_rewrite_that_is_not_structurally_equal(mac16, tmp_path):
    b, parent = mac16
    text = parent.read_text()
    m = re.search(r"AND2X1 (\S+) \(\s*\.A\(([^)]*)\),\s*\.B\(([^)]*)\),\s*\.Y\(([^)]*)\)\s*\);", text)
    rewrite = (f"NAND2X1 {m.group(1)} (.A({m.group(2)}), .B({m.group(3)}), .Y(eq_n));\n"
               f" INVX4 eq_i (.A(eq_n), .Y({m.group(4)}));")
    text = text[:m.start()] + rewrite + text[m.end():]
    text = text.replace(");\n", ");\n wire eq_n;\n", 1)
    assert _check(b, parent, text, tmp_path, "rewrite").proven


def test_a_cloned_register_is_matched_to_its_original(bench, tmp_path):
    b = bench("crc64")
    d = b.base()[1]
    m, tdir = b.trial("eqc_clone", "clone_driver", {"paths": 20, "min_fanout": 2, "max_clones": 10}, parent=d)
    gold, gate = parse_netlist((d / "crc64.v").read_text()), parse_netlist((tdir / "crc64.v").read_text())
    match = structural(gold, gate, load(b.tool.libs[0]))
    assert not match.diff
    clones = [i for i in gate.insts if i.startswith("n2c_")]
    assert clones and m["eco_changes"] == len(clones)
    if any(gate.insts[c][0].startswith("DFF") for c in clones):
        assert match.alias  # a cloned flop is the same state element as the flop it copies


@pytest.mark.parametrize("design", ["mac16", "alu32", "crc64", "sort8"])
def test_ecod_netlists_round_trip_through_yosys_and_prove_equal(bench, tmp_path, design):
    b = bench(design)
    parent = b.base()[1]
    m, d = b.trial("rt_buf", "buffer_fanout", {"paths": 10, "min_fanout": 3, "max_nets": 4}, parent=parent)
    m2, d2 = b.trial("rt_swap", "pin_swap", {"paths": 10, "max_swaps": 10}, parent=d)
    assert "failure" not in m and "failure" not in m2
    lib = b.tool.libs[0]
    rt = tmp_path / "rt.v"
    r = subprocess.run(["yosys", "-p", f"read_liberty -lib {lib}; read_verilog {d2 / (b.top + '.v')}; "
                        f"hierarchy -top {b.top}; write_verilog -noattr {rt}"], capture_output=True, text=True)
    assert r.returncode == 0 and "Warning" not in r.stdout, r.stdout[-2000:]
    for gold, gate in ((d2 / f"{b.top}.v", rt), (parent / f"{b.top}.v", d2 / f"{b.top}.v")):
        out = prove(gold, gate, b.tool.libs, load(lib), tmp_path / "p")
        assert out.proven and out.method == "structural" and out.seconds < 5, out


def test_an_unproven_survivor_fails_and_the_next_proven_case_is_promoted(tmp_path, monkeypatch):
    import anyio

    from noodle2.engine.run.engine import Engine
    from noodle2.engine.run.studydir import new_study_dir
    from noodle2.engine.study.load import parse_study
    from noodle2.engine.tools import make_tool
    from tests.conftest import FAKE, ROOT

    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "sta").symlink_to(FAKE / "sta_corrupts_pin_swap.py")
    monkeypatch.setenv("N2_REAL_STA", shutil.which("sta"))
    monkeypatch.setenv("PATH", f"{bin_}:{__import__('os').environ['PATH']}")
    text = (ROOT / "sample_studies/quickstart.toml").read_text()
    text = text[:text.index("[[stages]]")] + ('[[stages]]\nname = "only"\nmode = "sta"\ntrials = 4\nsurvivors = 1\n'
                                              'ecos = ["pin_swap", "noop"]\n')
    text = text.replace("[execution]", "[execution]\nwarm = false  # the fake wraps each sta as it starts", 1)
    study = parse_study(text, ROOT / "sample_studies/quickstart.toml")
    d = new_study_dir(study, tmp_path / "studies")
    eng = Engine(d, study, make_tool(study, d))
    assert anyio.run(eng.run) == "complete"
    s = eng.state
    [survivor] = s.stages[0].survivors
    assert s.trials[survivor].eco == "noop" and s.trials[survivor].proof["proven"]
    failed = [t for t in s.stage_trials(0) if t.status == "failed"]
    assert failed and all(t.eco == "pin_swap" and t.failure["type"] == "not_equivalent" for t in failed)
    for t in failed:
        assert not t.proof["proven"] and "counterexample" in t.failure["reason"]
        assert "gold:" in (d / "trials" / t.case_id / "equiv" / "counterexample.txt").read_text()
    gates = [g for g in s.gates if g["gate"] == "equivalence"]
    assert [g["result"] for g in gates] == ["fail"] * len(failed) + ["pass"]


def test_equivalence_all_proves_every_trial_and_off_proves_none(tmp_path):
    import anyio

    from noodle2.engine.run.engine import Engine
    from noodle2.engine.run.studydir import new_study_dir
    from noodle2.engine.study.load import parse_study
    from noodle2.engine.tools import make_tool
    from tests.conftest import ROOT

    text = (ROOT / "sample_studies/quickstart.toml").read_text()
    text = text[:text.index("[[stages]]")] + ('[[stages]]\nname = "only"\nmode = "sta"\ntrials = 4\nsurvivors = 1\n'
                                              'ecos = ["buffer_fanout", "pin_swap"]\n')
    for mode, proved in (("all", 4), ("off", 0)):
        study = parse_study(text.replace("[ranking]", f'[verify]\nequivalence = "{mode}"\n\n[ranking]'),
                            ROOT / "sample_studies/quickstart.toml")
        d = new_study_dir(study, tmp_path / mode)
        eng = Engine(d, study, make_tool(study, d))
        assert anyio.run(eng.run) == "complete"
        proofs = [t.proof for t in eng.state.stage_trials(0) if t.proof]
        assert len(proofs) == proved and all(p["proven"] and p["against"] == "mac16" for p in proofs)


def test_a_clone_of_a_cloned_flop_is_the_same_state_element(mac16, tmp_path):
    """A flop cloned in one stage and its clone cloned again in the next: all three registers
    share D and CLK, so they are one state element (this once produced a false counterexample)."""
    from noodle2.engine.tools.netlist import write_netlist

    b, base = mac16
    lib = load(b.tool.libs[0])
    n = parse_netlist(base.read_text())
    flop = next(i for i, (cell, pins) in sorted(n.insts.items()) if cell == "DFFPOSX1"
                and sum(q == pins["Q"] for _, ps in n.insts.values() for q in ps.values()) >= 3)
    q = n.insts[flop][1]["Q"]
    loads = sorted((i, p) for i, (cell, pins) in n.insts.items() for p, b2 in pins.items()
                   if b2 == q and p != "Q")

    def clone(net, src, name, load):
        cell, pins = net.insts[src]
        net.insts[name] = (cell, {**pins, "Q": (f"{name}_q", None)})
        i, p = load
        net.insts[i][1][p] = (f"{name}_q", None)

    parent = parse_netlist(base.read_text())
    clone(parent, flop, "x1", loads[0])
    clone(parent, flop, "x2", loads[1])
    child = parse_netlist(write_netlist(parent))
    clone(child, "x1", "x3", loads[0])  # a clone of the clone, taking its load
    for gold, gate, name in ((n, parent, "parent"), (parent, child, "child"), (n, child, "direct")):
        (tmp_path / f"{name}_g.v").write_text(write_netlist(gold))
        (tmp_path / f"{name}_t.v").write_text(write_netlist(gate))
        out = prove(tmp_path / f"{name}_g.v", tmp_path / f"{name}_t.v", b.tool.libs, lib, tmp_path / name)
        assert out.proven and out.method == "structural", (name, out)


def test_registers_a_tool_renamed_are_matched_by_structure(mac16, tmp_path):
    """qflow renames every flop; correspondence by function finds each one's original, and
    then exchanging two flops' next states is still caught."""
    b, parent = mac16
    text = parent.read_text()
    flops = re.findall(r"\b(DFF\w+)\s+(\S+)\s*\(", text)
    assert len(flops) > 40
    renamed = text
    for k, (cell, name) in enumerate(flops):
        renamed = re.sub(rf"\b{cell}\s+{re.escape(name)}\s*\(", f"{cell} REG_{k} (", renamed, count=1)
    ok = _check(b, parent, renamed, tmp_path, "renamed")
    assert ok.proven and ok.method == "structural" and f"{len(flops)} renamed register(s)" in ok.detail, ok
    d = list(re.finditer(r"REG_\d+ \(\s*\.CLK\([^)]*\),\s*\.D\(([^)]*)\)", renamed))
    a, c = d[3], d[9]  # exchange the nets two flops load (c comes later in the text)
    swapped = (renamed[:a.start(1)] + c.group(1) + renamed[a.end(1):c.start(1)] + a.group(1) + renamed[c.end(1):])
    assert swapped != renamed
    bad = _check(b, parent, swapped, tmp_path, "renamed_swapped")
    assert not bad.proven, bad
