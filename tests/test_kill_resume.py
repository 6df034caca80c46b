"""kill -9 the engine at ≥20 random instants; resume after each; the result must equal an
uninterrupted run, and no trial that completed may ever start again."""
from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path

from engine import events as ev
from engine.journal import JOURNAL, read_events, recover
from tests.conftest import NOODLE2, ROOT, cli_env, fake_study

STAGES = """
[[stages]]
name = "s0"
trials = 10
survivors = 3
ecos = ["resize_critical", "buffer_fanout", "pin_swap"]

[[stages]]
name = "s1"
trials = 8
survivors = 2
ecos = ["clone_driver", "resize_critical"]

[[stages]]
name = "s2"
after = ["s0"]
trials = 6
survivors = 2
ecos = ["downsize_noncritical"]

[[stages]]
name = "s3"
after = ["s1", "s2"]
trials = 6
survivors = 1
ecos = ["resize_critical", "pin_swap"]
"""


def result(d: Path) -> dict:
    s = recover(d).state
    return {"status": s.status, "survivors": [st.survivors for st in s.stages],
            "metrics": {c: t.metrics for c, t in s.trials.items()}}


def test_sigkill_at_random_instants_then_resume_equals_uninterrupted(tmp_path):
    path = fake_study(tmp_path, stages=STAGES)
    env = cli_env(N2_FAKE_DELAY="0.08")
    ref = tmp_path / "ref"
    subprocess.run([*NOODLE2, "run", str(path), "--unattended", "--study-dir", str(ref)], env=env, cwd=ROOT,
                   check=True, capture_output=True)

    d = tmp_path / "killed"
    rng = random.Random(20261126)
    kills, runs = 0, 0
    cmd = [*NOODLE2, "run", str(path), "--unattended", "--study-dir", str(d)]
    while True:
        p = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        runs += 1
        try:
            p.wait(timeout=rng.uniform(0.05, 0.7))
        except subprocess.TimeoutExpired:
            p.kill()  # SIGKILL: no handler runs, nothing is flushed
            p.wait()
            kills += 1
            if (d / "inputs" / "study.toml").exists():  # else killed before it made the dir: run again
                cmd = [*NOODLE2, "resume", str(d)]
            if recover(d).state.status == "complete":  # killed after its last event, while exiting
                break
            continue
        assert p.returncode == 0, p.stderr.read().decode()
        break
    assert kills >= 20, f"only {kills} kills landed; lengthen the study"
    assert result(d) == result(ref)

    evs = read_events(d / JOURNAL).events
    finished_at: dict[str, int] = {}
    for e in evs:
        if isinstance(e, ev.TrialFinished):
            assert e.case_id not in finished_at, f"{e.case_id} finished twice"
            finished_at[e.case_id] = e.seq
        if isinstance(e, ev.TrialStarted):
            assert e.case_id not in finished_at, f"{e.case_id} started again after it had finished"
    assert len(finished_at) == 1 + 10 + 8 + 6 + 6
    assert sum(isinstance(e, ev.StudyResumed) for e in evs) >= 1
    assert runs in (kills, kills + 1)


def test_resume_kills_tools_orphaned_by_a_dead_engine(tmp_path):
    import sys

    from tests.conftest import FAKE

    mark = tmp_path / "hang"
    mark.touch()
    tool = tmp_path / "tool.sh"
    tool.write_text(f"""#!/bin/sh
if [ "$N2_ECO" != "noop" ] && [ -e {mark} ]; then sleep 300; fi
exec {sys.executable} {FAKE / 'eco_model.py'}
""")
    tool.chmod(0o755)
    path = fake_study(tmp_path, command=[str(tool)],
                      stages='[[stages]]\nname = "one"\ntrials = 1\nsurvivors = 1\necos = ["pin_swap"]\n')
    d = tmp_path / "study"
    p = subprocess.Popen([*NOODLE2, "run", str(path), "--unattended", "--study-dir", str(d)], cwd=ROOT, env=cli_env(),
                         stdout=subprocess.DEVNULL)
    trial_dir = str(d / "trials" / "fake_0_0")

    def tool_pids() -> list[int]:
        out = []
        for e in Path("/proc").iterdir():
            try:
                if e.name.isdigit() and f"N2_TRIAL_DIR={trial_dir}".encode() in (e / "environ").read_bytes():
                    out.append(int(e.name))
            except OSError:
                pass
        return out

    deadline = time.time() + 20
    while not tool_pids() and time.time() < deadline:
        time.sleep(0.05)
    p.kill()
    p.wait()
    orphans = tool_pids()
    assert orphans, "the hanging tool should outlive the SIGKILLed engine"
    mark.unlink()
    (d / "trials" / "fake_0_0" / "left_by_the_dead_attempt.txt").write_text("junk")
    r = subprocess.run([*NOODLE2, "resume", str(d)], cwd=ROOT, env=cli_env(), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert "killed" in r.stdout and "orphaned tool process" in r.stdout
    assert not (d / "trials" / "fake_0_0" / "left_by_the_dead_attempt.txt").exists()  # re-run in a clean dir
    assert (d / "trials" / "fake_0_0" / "metrics.json").exists()
    time.sleep(0.2)
    assert not [pid for pid in orphans if Path(f"/proc/{pid}").exists()
                and (Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z")]
