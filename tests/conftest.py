from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FAKE = ROOT / "tests" / "fake_tools"
# The example plugin (one ECO, one metric, through entry points): on the tests' path only, never
# installed into the user's venv (#22.22).  Its dist-info makes importlib.metadata find it.
PLUGIN = ROOT / "tests" / "plugin"
sys.path.insert(0, str(PLUGIN))
NOODLE2 = [sys.executable, "-m", "noodle2.console.cli"]


def fake_study(tmp: Path, *, name: str = "fake", stages: str | None = None, command: list[str] | None = None,
               extra: str = "", max_parallel: int = 2) -> Path:
    """A study file driving the deterministic fake ECO tool (engine tests only)."""
    command = command or [sys.executable, str(FAKE / "eco_model.py")]
    stages = stages or """
[[stages]]
name = "explore"
trials = 6
survivors = 2
ecos = ["resize_critical", "buffer_fanout"]

[[stages]]
name = "refine"
trials = 4
survivors = 2
ecos = ["clone_driver", "pin_swap"]

[[stages]]
name = "side"
after = ["explore"]
trials = 3
survivors = 1
ecos = ["downsize_noncritical"]
"""
    cmd = ", ".join(f'"{c}"' for c in command)
    text = f"""
[study]
name = "{name}"
seed = 11

[safety]
allow = ["tool_command"]  # the fake tool is a command; locked runs one only when allowed

[design]
top = "fake"

[tool]
kind = "command"
command = [{cmd}]

[execution]
max_parallel = {max_parallel}
soft_timeout_s = 20
read_only_mounts = false  # engine logic, thousands of trials: the mounts' own tests have them on
{extra}
{stages}
"""
    path = tmp / f"{name}.toml"
    path.write_text(text)
    return path


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI run: noodle2 comes from the installed package, as for a user."""
    return {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PYTHONPATH": str(PLUGIN), **extra}


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto`: a worker per CPU this process may use (taskset and a cgroup quota count), none
    on one CPU, where two workers measured slower than one process (1,290 s against 994-1,157 s);
    at most 8, beyond which the longest file (test_ray.py) sets the time."""
    from noodle2.engine.executors.cgroupfs import usable_cpus

    cpus = usable_cpus()
    return 0 if cpus < 2 else min(cpus, 8)


@pytest.fixture
def anyio_backend():
    return "asyncio"


# --- real OpenSTA trials, one at a time -------------------------------------------------------

SAMPLES = {"mac16": "quickstart.toml", "alu32": "alu32.toml", "crc64": "crc64.toml", "sort8": "sort8.toml"}


@pytest.fixture(scope="session", autouse=True)
def hermetic_cache(tmp_path_factory):
    """Synthesis results are cached per test session, never in the user's cache."""
    os.environ["NOODLE2_CACHE"] = str(tmp_path_factory.mktemp("n2cache"))


class StaBench:
    """One design's snapshot plus a way to run single real `sta` trials on it.  `design`: a
    sample design (SAMPLES), or the file name of any sample study."""

    def __init__(self, design: str, root: Path, tech: str = "osu018") -> None:
        from noodle2.engine.executors.warm import WarmLimits, WarmPool
        from noodle2.engine.run.studydir import new_study_dir
        from noodle2.engine.study.load import parse_study
        from noodle2.engine.tools.timing.opensta import OpenSTATool

        path = ROOT / "sample_studies" / SAMPLES.get(design, design)
        self.study = parse_study(path.read_text().replace('tech = "osu018"', f'tech = "{tech}"'), path)
        self.dir = new_study_dir(self.study, explicit=root)
        self.tool = OpenSTATool(self.study, self.dir)
        self.provenance = self.tool.setup()
        self.top = self.study.spec.design.top
        self.pool = WarmPool(WarmLimits(), None)  # trials run as a study runs them: on warm workers

    def base(self) -> tuple[dict, Path]:
        """The design's no-op run, once per session."""
        if not hasattr(self, "_base"):
            self._base = self.trial("base_noop", "noop")
        return self._base

    def trial(self, case: str, eco: str, params: dict | None = None, parent: Path | None = None,
              mode: str = "sta_power", eco_call: str | None = None, extra_tcl: str = "",
              pool=None) -> tuple[dict, Path]:
        """Returns (metrics, dir) for a result, ({'failure': ...}, dir) for a failed trial.
        `pool`: warm workers other than the bench's own."""
        from noodle2.engine.executors.process import Proc, run_command
        from noodle2.engine.policy.failures import classify
        from noodle2.engine.tools.base import TrialContext, TrialFailure

        tdir = self.dir / "trials" / case
        tdir.mkdir(parents=True)
        parent_metrics = None
        ctx = TrialContext(self.dir, case, tdir, parent or self.dir / "snapshot", parent_metrics, eco, params or {},
                           mode, 60, 70, None)
        cmd = self.tool.prepare(ctx)
        if eco_call is not None:  # a test's own Tcl runs cold, as a study's own Tcl does
            (tdir / "run.tcl").write_text(self.tool.script(ctx, eco_call, extra_tcl))
        if cmd.warm is not None and eco_call is None and not extra_tcl:
            res = (self.pool if pool is None else pool).run(cmd, Proc(), (60, 70))
        else:
            res = run_command(cmd)
        fail = classify(res.outcome, "")
        if fail is not None:
            return {"failure": fail}, tdir
        try:
            return self.tool.collect(ctx, res), tdir
        except TrialFailure as f:
            return {"failure": f.failure}, tdir


_BENCHES: dict[str, StaBench] = {}


@pytest.fixture(scope="session", autouse=True)
def _close_bench_workers():
    yield
    for b in _BENCHES.values():
        b.pool.close()


@pytest.fixture
def bench(tmp_path_factory):
    def get(design: str, tech: str = "osu018") -> StaBench:
        key = f"{design}-{tech}"
        if key not in _BENCHES:
            _BENCHES[key] = StaBench(design, tmp_path_factory.mktemp(key), tech)
        return _BENCHES[key]
    return get
