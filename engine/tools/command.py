"""A generic command tool: runs argv in the trial directory and reads a JSON metrics file.

The trial's inputs are in trial.json and in N2_* environment variables; `{trial_dir}`,
`{parent_dir}`, `{case_id}`, `{eco}` in argv are substituted (validation refuses any other).
"""
from __future__ import annotations

import os
import string
from pathlib import Path
from typing import Any

import orjson

from noodle2.engine.catalog.ecos import catalog
from noodle2.engine.catalog.metrics import MAX_METRICS_BYTES
from noodle2.engine.executors.base import Command, ExecResult
from noodle2.engine.fsutil import read_capped
from noodle2.engine.study.models import Tool
from noodle2.engine.tools.base import TrialContext, TrialFailure, tail

PLACEHOLDERS = ("trial_dir", "parent_dir", "case_id", "eco")
LOGS = {"stdout.log", "stderr.log"}


def placeholder_problem(arg: str) -> str | None:
    """Why `arg` cannot be formatted with the trial's placeholders, or None."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(arg) if f is not None]
    except ValueError as e:
        return f"{arg!r}: {e} (write {{{{ and }}}} for literal braces)"
    bad = [f for f in fields if f not in PLACEHOLDERS]
    if bad:
        return f"{arg!r} uses {{{bad[0]}}}; the placeholders are " + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
    return None


class CommandTool:
    name = "command"

    def __init__(self, tool: Tool, spec: Any = None) -> None:
        assert tool.command
        self.spec = spec
        self.argv = tool.command
        self.metrics_file = tool.metrics_file or None  # "" in TOML: the tool reports no metrics
        self.reports_metrics = self.metrics_file is not None

    def implements(self) -> set[str]:
        return set(catalog(self.spec))

    def setup(self) -> dict[str, Any]:
        return {}

    def snapshot_files(self) -> list[Path]:
        return []

    def prove(self, trial_dir: Path, parent_dir: Path) -> None:
        return None  # an arbitrary tool's outputs have no notion of equivalence

    def outputs(self, ctx: TrialContext) -> list[str]:
        """Everything the tool left but its logs and noodle2's trial.json: a child may read any
        of it.  trial.json names the case, so counting it would make two equal designs differ."""
        return sorted(e.name for e in os.scandir(ctx.trial_dir)
                      if e.is_file(follow_symlinks=False) and e.name not in LOGS and e.name != "trial.json")

    def prepare(self, ctx: TrialContext) -> Command:
        info = {"case_id": ctx.case_id, "eco": ctx.eco, "params": ctx.params, "mode": ctx.mode,
                "parent_dir": str(ctx.parent_dir), "parent_metrics": ctx.parent_metrics}
        (ctx.trial_dir / "trial.json").write_bytes(orjson.dumps(info))
        subst = {"trial_dir": str(ctx.trial_dir), "parent_dir": str(ctx.parent_dir), "case_id": ctx.case_id,
                 "eco": ctx.eco}
        argv = [a.format(**subst) if "{" in a else a for a in self.argv]
        env = dict(os.environ, N2_CASE_ID=ctx.case_id, N2_ECO=ctx.eco, N2_PARAMS=orjson.dumps(ctx.params).decode(),
                   N2_PARENT_DIR=str(ctx.parent_dir), N2_MODE=ctx.mode)
        return Command(argv, ctx.trial_dir, ctx.trial_dir / "stdout.log", ctx.trial_dir / "stderr.log", env,
                       ctx.memory_limit_mb)

    def collect(self, ctx: TrialContext, result: ExecResult) -> dict[str, Any]:
        if self.metrics_file is None:
            return {}
        path = ctx.trial_dir / self.metrics_file
        try:
            data = orjson.loads(read_capped(path, MAX_METRICS_BYTES))
        except FileNotFoundError:
            raise TrialFailure("missing_output", f"tool wrote no {self.metrics_file}",
                               tail(ctx.trial_dir / "stderr.log") or tail(ctx.trial_dir / "stdout.log")) from None
        except orjson.JSONDecodeError as e:
            raise TrialFailure("parse_failure", f"{self.metrics_file} is not JSON: {e}", tail(path, 400)) from None
        except ValueError as e:
            raise TrialFailure("parse_failure", f"{self.metrics_file} {e}") from None
        return data
