"""Every example any `noodle2 --help` prints runs as printed (#10.1), and the README's
walk-through works as written: the quickstart, then a study of one's own made with
`noodle2 init` for a netlist outside the repo (#10, done when)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from noodle2.engine.journal.store import recover
from tests.conftest import NOODLE2, ROOT, cli_env
from tests.waiting import journal_lines, wait_until

pytestmark = pytest.mark.skipif(shutil.which("sta") is None, reason="needs OpenSTA")
def commands() -> list[str]:
    """Every subcommand the parser has: one added later cannot slip past this test."""
    import argparse

    from noodle2.console.cli import _parser

    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    return list(sub.choices)


def examples() -> list[str]:
    out: list[str] = []
    for args in ([], *([c] for c in commands())):
        text = subprocess.run([*NOODLE2, *args, "--help"], cwd=ROOT, env=cli_env(), capture_output=True,
                              text=True).stdout
        block = text.split("examples:\n", 1)[1].split("\n\n", 1)[0]
        for line in block.splitlines():
            cmd = re.split(r"\s{3,}", line.strip())[0]  # the main help's examples carry a comment column
            if cmd.startswith("noodle2") and cmd not in out:
                out.append(cmd)
    return out


def test_every_help_example_runs_as_printed(tmp_path):
    found = examples()
    assert len(found) >= 20
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "noodle2").write_text(f"#!/bin/sh\nexec {sys.executable} -m noodle2.console.cli \"$@\"\n")
    (bin_ / "noodle2").chmod(0o755)
    env = cli_env(PATH=f"{bin_}:{os.environ['PATH']}", NOODLE2_CONSOLE_SMOKE="1")
    shutil.copytree(ROOT / "sample_studies", tmp_path / "sample_studies")
    # the study directory the examples name, made the way an operator makes one
    made = [subprocess.Popen(["noodle2", "run", "sample_studies/quickstart.toml", "--unattended", "--study-dir",
                              f"studies/quickstart-{stamp}"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
            for stamp in ("20261126-141500", "20261127-090000")]  # the second one for `compare`
    for p in made:
        assert p.wait(timeout=300) == 0, p.stderr.read()[-1500:]

    def run(cmds: list[str]) -> None:
        for cmd in cmds:  # in the order the help prints them: `ci --update-baseline` before `ci --baseline`
            r = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
            assert r.returncode == 0, (cmd, r.stdout[-800:], r.stderr[-1500:])
            assert "Traceback" not in r.stderr, cmd

    run([c for c in found if c.startswith("noodle2 init")])  # my.toml first: other examples use it
    groups: dict[str, list[str]] = {}
    for c in found:
        if not c.startswith("noodle2 init"):
            groups.setdefault(c.split()[1] if len(c.split()) > 1 else "", []).append(c)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:  # one command's examples in order, two commands at once
        list(pool.map(run, groups.values()))
    assert (tmp_path / "noodle2.schema.json").stat().st_size > 1000 and (tmp_path / "events.jsonl").stat().st_size
    for d in (tmp_path / "studies").iterdir():  # the console examples started engines, detached
        wait_until(lambda: recover(d).state.status in ("complete", "failed", "blocked"), f"{d.name} to finish",
                   timeout=300, progress=lambda: journal_lines(d))


def readme_block(heading: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split(heading, 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [ln for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]


def test_the_readme_walk_through_works_as_written(tmp_path):
    """The first command of the README (the console on the quickstart), then its section on a
    design of one's own, with a netlist outside the repo, in a HOME of the test's own."""
    first = (ROOT / "README.md").read_text().split("```sh\n", 1)[1].split("```", 1)[0]
    run_line = next(ln for ln in first.splitlines() if "noodle2 run" in ln)
    assert run_line.startswith("bash .ci/setup && .venv/bin/noodle2 run sample_studies/quickstart.toml")
    env = cli_env(NOODLE2_CONSOLE_SMOKE="1", HOME=str(tmp_path))
    work = tmp_path / "clone"
    shutil.copytree(ROOT / "sample_studies", work / "sample_studies")
    (work / ".venv" / "bin").mkdir(parents=True)
    (work / ".venv" / "bin" / "noodle2").write_text(f"#!/bin/sh\nexec {sys.executable} -m noodle2.console.cli \"$@\"\n")
    (work / ".venv" / "bin" / "noodle2").chmod(0o755)
    r = subprocess.run(["bash", "-c", run_line.split("&&", 1)[1]], cwd=work, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-1500:]
    [study] = list((work / "studies").iterdir())
    wait_until(lambda: recover(study).state.status == "complete", "the quickstart to finish", timeout=300,
               progress=lambda: journal_lines(study))
    # a gate-level netlist of one's own, outside the repo: here, the quickstart's synthesised one
    chip = tmp_path / "chip"
    chip.mkdir()
    shutil.copy(study / "snapshot" / "mac16.v", chip / "top.v")
    shutil.copy(study / "snapshot" / "mac16.sdc", chip / "top.sdc")
    for line in readme_block("## Your own design"):
        r = subprocess.run(["bash", "-c", line], cwd=work, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, (line, r.stdout[-1500:], r.stderr[-1500:])
    mine = Path(tmp_path / "chip" / "mine.toml")
    assert mine.is_file()
    [own] = [d for d in (work / "studies").iterdir() if d.name.startswith("mac16-") and d != study]
    s = recover(own).state
    assert s.status == "complete" and s.base().metrics["wns_ps"] == pytest.approx(-2661.0)
