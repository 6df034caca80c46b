"""Hardening against real tools: a full disk, quoting that `sta` reads back exactly, a study
directory whose path holds spaces, `$` and `[`, a changed SDC at resume, a hung Yosys."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from noodle2.engine.journal import events as ev
from noodle2.engine.journal.store import JOURNAL, read_events, recover
from noodle2.engine.quote import control_chars, safe_name, tcl_word, yosys_word
from tests.conftest import NOODLE2, ROOT, cli_env
from tests.waiting import journal_lines, wait_until

pytestmark = pytest.mark.skipif(shutil.which("sta") is None or shutil.which("yosys") is None,
                                reason="needs OpenSTA and Yosys (bash .ci/setup installs them)")


def small_study(folder: Path, *, trials: tuple[int, ...] = (4, 3), extra: str = "") -> Path:
    """The quickstart design with smaller stages, in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "sample_studies/designs/mac16", folder / "designs/mac16", dirs_exist_ok=True)
    stages = "".join(f'\n[[stages]]\nname = "s{i}"\nmode = "sta"\ntrials = {n}\nsurvivors = 2\n'
                     f'ecos = ["buffer_fanout", "pin_swap", "resize_critical"]\n' for i, n in enumerate(trials))
    (folder / "study.toml").write_text(f"""[study]
name = "small"
seed = 4
[design]
top = "mac16"
rtl = ["designs/mac16/mac16.v"]
sdc = "designs/mac16/mac16.sdc"
[execution]
max_parallel = 1
{extra}
{stages}""")
    return folder / "study.toml"


def outcome(d: Path) -> tuple:
    s = recover(d).state
    return s.status, [x.survivors for x in s.stages], {c: t.metrics for c, t in sorted(s.trials.items())}


def cli(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*NOODLE2, *args], cwd=kw.pop("cwd", ROOT), env=kw.pop("env", cli_env()),
                          capture_output=True, text=True, timeout=kw.pop("timeout", 300), **kw)


# --- quoting ----------------------------------------------------------------------------------------

def _sta_reads_back(words: list[str], tmp: Path) -> list[bytes]:
    """What `sta` evaluates each tcl_word(...) to, as bytes in its system encoding."""
    lines = [f"set w {tcl_word(w)}\nputs \"H:[binary encode hex [encoding convertto [encoding system] $w]]\""
             for w in words]
    (tmp / "q.tcl").write_bytes(("\n".join(lines) + "\nexit\n").encode())
    r = subprocess.run(["sta", "-no_init", "-no_splash", "q.tcl"], cwd=tmp, capture_output=True, timeout=60)
    return [bytes.fromhex(x[2:]) for x in r.stdout.decode().splitlines() if x.startswith("H:")]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.text(st.characters(blacklist_categories=("Cc", "Cf", "Zl", "Zp", "Cs")), max_size=30),
                min_size=1, max_size=40))
def test_tcl_word_reads_back_exactly_in_sta(tmp_path_factory, words):
    tmp = tmp_path_factory.mktemp("q")
    assert _sta_reads_back(words, tmp) == [w.encode() for w in words]


def test_tcl_word_every_ascii_class_and_refusals(tmp_path):
    nasty = ["a b", "$x", "[exec rm -rf /]", "}", "{", "{}", "\\", 'q"uote', ";", "#x", "a\\nb", "ü ñ 漢",
             "".join(chr(c) for c in range(32, 127))]
    assert _sta_reads_back(nasty, tmp_path) == [w.encode() for w in nasty]
    for bad in ("a\nb", "a\rb", "a\x00b", "a\tb", "a\u2028b", "\x1b[31m"):
        assert control_chars(bad)
        with pytest.raises(ValueError):
            tcl_word(bad)


def test_only_safe_names_reach_yosys():
    for ok in ("src/0_mac16.v", "tech/osu018_stdcells.lib", "mac16.v"):
        assert yosys_word(ok) == ok
    for bad in ("a b.v", 'a"b.v', "x;y", "#c", "-flag", "a\nb", "", "$x"):
        with pytest.raises(ValueError):
            yosys_word(bad)
        assert yosys_word(safe_name(bad)) == safe_name(bad)


def test_a_study_in_a_path_with_space_dollar_and_brackets_runs_and_runs_nothing_else(tmp_path):
    pwned = tmp_path / "PWNED"
    weird = tmp_path / f"my studies $HOME [exec touch {pwned}] {{x}}"
    path = small_study(weird, trials=(2,))
    r = cli("run", str(path), "--unattended", "--study-dir", str(weird / "out dir [1]"))
    assert r.returncode == 0, r.stderr[-2000:]
    s = recover(weird / "out dir [1]").state
    assert s.status == "complete" and s.base().metrics["wns_ps"] == pytest.approx(-2661.0)
    assert not pwned.exists()


# --- inputs that change or vanish ----------------------------------------------------------------------

def test_resume_refuses_a_changed_sdc_in_the_snapshot(tmp_path):
    path = small_study(tmp_path / "s")
    d = tmp_path / "study"
    p = subprocess.Popen([*NOODLE2, "run", str(path), "--unattended", "--study-dir", str(d)], cwd=ROOT, env=cli_env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: (d / JOURNAL).exists() and any(
        isinstance(e, ev.TrialFinished) and e.case_id != "mac16" for e in read_events(d / JOURNAL, final=False).events),
        "a first ECO trial to finish", progress=lambda: journal_lines(d))
    p.kill()
    p.wait()
    sdc = d / "snapshot/mac16.sdc"
    os.chmod(sdc, 0o644)
    sdc.write_text(sdc.read_text().replace("-period 4.0", "-period 40.0"))
    r = cli("resume", str(d))
    assert r.returncode == 2 and "N2-E202 snapshot/mac16.sdc" in r.stderr and "changed" in r.stderr
    assert recover(d).state.status == "running"  # nothing ran, nothing was written


# --- a full disk ---------------------------------------------------------------------------------------

def full_disk_then_resume(path: Path, tmp_path: Path, ref: Path) -> str:
    """Run `path` with its study directory on a 2.2 MB tmpfs until the disk fills: exit 3 with
    N2-E208, nothing charged to an ECO, no temp files left; then grow the disk, resume, and
    compare with the uninterrupted run `ref`.  Returns the first run's stderr."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2200k", "tmpfs", str(mnt)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        d = mnt / "study"
        r = cli("run", str(path), "--unattended", "--study-dir", str(d), timeout=300)
        assert r.returncode == 3, (r.returncode, r.stdout[-1500:], r.stderr[-1500:])
        assert "N2-E208" in r.stderr and "no space left" in r.stderr and f"resume {d}" in r.stderr
        assert "Traceback" not in r.stderr
        s = recover(d).state
        charged = [t for t in s.trials.values() if t.status == "failed"]
        assert not charged, [(t.case_id, t.failure) for t in charged]  # nothing blamed on an ECO
        assert not [p for p in mnt.rglob(".*.tmp")]
        subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
        resumed = cli("resume", str(d), timeout=300)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert outcome(d) == outcome(ref)
        return r.stderr
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_full_disk_stops_cleanly_and_resume_equals_an_uninterrupted_run(tmp_path):
    path = small_study(tmp_path / "s", trials=(6, 4))
    ref = tmp_path / "ref"
    r = cli("run", str(path), "--unattended", "--study-dir", str(ref))
    assert r.returncode == 0, r.stderr
    full_disk_then_resume(path, tmp_path, ref)


# --- synthesis: a timeout, and no Yosys left behind by a dead engine ----------------------------------

def _hanging_yosys(tmp: Path) -> dict:
    bin_ = tmp / "bin"
    bin_.mkdir()
    real = shutil.which("yosys")
    (bin_ / "yosys").write_text(f'#!/bin/sh\nif [ "$1" = "-V" ]; then exec {real} -V; fi\nexec sleep 300\n')
    (bin_ / "yosys").chmod(0o755)
    return cli_env(PATH=f"{bin_}:{os.environ['PATH']}", NOODLE2_CACHE=str(tmp / "cache"))


def test_synthesis_timeout_blocks_the_study_with_a_reason(tmp_path):
    path = small_study(tmp_path / "s", extra="synth_timeout_s = 1")
    r = cli("run", str(path), "--unattended", "--study-dir", str(tmp_path / "d"), env=_hanging_yosys(tmp_path))
    assert r.returncode == 1
    base = recover(tmp_path / "d").state.base()
    assert base.failure["type"] == "snapshot_failed" and "timeout" in base.failure["reason"]


def test_resume_kills_the_yosys_of_a_dead_engine(tmp_path):
    path = small_study(tmp_path / "s")
    d = tmp_path / "d"
    env = _hanging_yosys(tmp_path)
    p = subprocess.Popen([*NOODLE2, "run", str(path), "--unattended", "--study-dir", str(d)], cwd=ROOT, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def sleeping_yosys() -> list[int]:
        out = []
        for e in Path("/proc").iterdir():
            try:
                if e.name.isdigit() and f"N2_TRIAL_DIR={d / 'snapshot'}".encode() in (e / "environ").read_bytes():
                    out.append(int(e.name))
            except OSError:
                pass
        return out

    wait_until(sleeping_yosys, "the (fake, hanging) Yosys to start")
    assert journal_lines(d) >= 1
    p.kill()
    p.wait()
    orphans = sleeping_yosys()
    assert orphans
    r = cli("resume", str(d), env=cli_env(NOODLE2_CACHE=str(tmp_path / "cache")))
    assert r.returncode == 0, r.stderr[-1500:]
    assert "orphaned tool process" in r.stdout
    wait_until(lambda: not [x for x in orphans if Path(f"/proc/{x}").exists()
                            and Path(f"/proc/{x}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"],
               "the dead engine's Yosys to be killed", timeout=10)


def test_reuse_tool_env_and_a_class_budget_on_real_sta(tmp_path):
    """#21 on the real tool: a grid of identical resize trials takes the first finished one's
    result (netlist bytes, read-only, relabelled index), with [tool] env set (a warm worker keyed
    by it); an area budget keeps the buffers' extra area out of the survivors."""
    path = small_study(tmp_path / "s", extra='reuse = true\n\n[tool.env]\nN2X_PROBE = "seen"\n\n'
                       '[rails.eco_class.placement_local]\nmax_area_added_um2 = 1e9')
    text = path.read_text().split("[[stages]]", 1)[0] + '''[[stages]]
name = "grid"
mode = "sta"
trials = 4
survivors = 2
sweep = "grid"
ecos = ["buffer_fanout"]
[stages.params.buffer_fanout]
paths = 28
min_fanout = 2
max_nets = 13
tree_fanout = 11
'''
    path.write_text(text)
    d = tmp_path / "d"
    r = cli("run", str(path), "--unattended", "--study-dir", str(d))
    assert r.returncode == 0, r.stdout[-1500:] + r.stderr[-1500:]
    s = recover(d).state
    reused = {c: s.trials[c].resources["reused_from"] for c in s.stages[0].cases
              if (s.trials[c].resources or {}).get("reused_from")}
    assert reused and "↺ as" in r.stdout
    for c, twin in reused.items():
        a, b = d / "trials" / c / "mac16.v", d / "trials" / twin / "mac16.v"
        assert a.read_bytes() == b.read_bytes() and not a.stat().st_mode & 0o222
        assert s.trials[c].metrics == s.trials[twin].metrics
        index = orjson.loads((d / "trials" / c / "artifact_index.json").read_bytes())
        assert {(e["case"], e["reused_from"]) for e in index} == {(c, twin)}
    assert not {c for c in s.stages[0].survivors if reused.get(c) in s.stages[0].survivors}  # one netlist survives once
    assert all(s.trials[c].metrics["area_um2"] > s.base().metrics["area_um2"] for c in s.stages[0].cases)
    # a budget with room for no added area: every buffering trial is over it, no survivor
    tight = path.read_text().replace("max_area_added_um2 = 1e9", "max_area_added_um2 = 0")
    path.write_text(tight)
    r = cli("run", str(path), "--unattended", "--study-dir", str(tmp_path / "t"))
    t = recover(tmp_path / "t").state
    done = [c for c in t.stages[0].cases if t.trials[c].status == "done"]
    assert done and set(t.stages[0].excluded) == set(done) and not t.stages[0].survivors
    assert all("placement_local budget: max_area_added_um2" in t.stages[0].excluded[c] for c in done)
