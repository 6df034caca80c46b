from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FAKE = ROOT / "tests" / "fake_tools"
NOODLE2 = [sys.executable, "-m", "console.cli"]


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

[design]
top = "fake"

[tool]
kind = "command"
command = [{cmd}]

[execution]
max_parallel = {max_parallel}
soft_timeout_s = 20
{extra}
{stages}
"""
    path = tmp / f"{name}.toml"
    path.write_text(text)
    return path


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), **extra)
    return env


@pytest.fixture
def anyio_backend():
    return "asyncio"
