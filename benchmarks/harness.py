"""What the benchmarks share: a study run to its end in this process, as `noodle2 run` would.
The scripts import it by name (a script's own folder is first on sys.path)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from noodle2.engine.run.engine import Engine  # noqa: E402
from noodle2.engine.run.studydir import new_study_dir  # noqa: E402
from noodle2.engine.study.load import parse_study  # noqa: E402
from noodle2.engine.study.models import Study  # noqa: E402
from noodle2.engine.tools import make_tool  # noqa: E402


def run_study(study: Study | str, origin: Path | None, root: Path, *,
              setup_first: bool = False) -> tuple[Engine, str, float]:
    """The study (or a study file's text, read as if it were at `origin`) in a new directory
    under `root`: its engine, final status and seconds.  `setup_first`: the tool's setup
    (synthesis) is done before the clock starts."""
    if isinstance(study, str):
        assert origin is not None
        study = parse_study(study, origin)
    d = new_study_dir(study, root)
    eng = Engine(d, study, make_tool(study, d))
    if setup_first:
        eng.tool.setup()
    t = time.perf_counter()
    status = anyio.run(eng.run)
    return eng, status, time.perf_counter() - t


def take_option(args: list[str], name: str, default: str | None = None) -> str | None:
    """`name VALUE` taken out of `args` (the rest are the script's samples): VALUE, else `default`."""
    if name not in args:
        return default
    i = args.index(name)
    value = args[i + 1]
    del args[i:i + 2]
    return value
