"""Tool adapters. `make_tool` picks the one a study names."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI lists technologies (tools/tech) without loading the study models
    from noodle2.engine.study.models import Study
    from noodle2.engine.tools.base import ToolAdapter


def make_tool(study: Study, study_dir: Path) -> ToolAdapter:
    if study.spec.tool.kind == "command":
        from noodle2.engine.tools.command import CommandTool

        return CommandTool(study.spec.tool, study.spec)
    from noodle2.engine.tools.timing.opensta import OpenSTATool

    return OpenSTATool(study, study_dir)
