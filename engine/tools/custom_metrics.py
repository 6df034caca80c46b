"""[custom] metrics read from a trial's files: one regex group (RE2, linear time) or a JSON
pointer, each a finite number, or the trial is a parse_failure."""
from __future__ import annotations

import json
import math
from typing import Any

from noodle2.engine.fsutil import read_capped


class ExtractError(ValueError):
    """A custom metric found nothing (or not a number): the trial is a parse_failure."""


def user_pattern(regex: str) -> Any:
    """A pattern from a study file or a plugin, compiled by RE2: matching takes time linear in
    the text whatever the pattern (a backtracking engine can take years on `^(a|a)*b`).  Lines
    are anchored by ^ and $ as with re.M.  ValueError says why a pattern cannot be used."""
    import re2

    opts = re2.Options()
    opts.log_errors = False
    try:
        return re2.compile("(?m)" + regex, opts)
    except re2.error as e:
        why = e.args[0].decode(errors="replace") if e.args and isinstance(e.args[0], bytes) else str(e)
        raise ValueError(f"{why} (RE2 syntax: no look-around and no back-references)") from None


def extract_custom(defs: list[Any], trial_dir: Any) -> dict[str, float]:
    """[custom] metrics from the trial's files: a regex's one group, or a JSON pointer."""
    out: dict[str, float] = {}
    for d in defs:
        path = trial_dir / d.source
        try:
            text = read_capped(path, 64 << 20).decode(errors="replace")
        except (OSError, ValueError):
            raise ExtractError(f"metric {d.name}: the trial wrote no {d.source} (or not as a regular file)") from None
        if d.regex is not None:
            try:
                m = user_pattern(d.regex).search(text)
            except ValueError as e:
                raise ExtractError(f"metric {d.name}: /{d.regex}/ cannot be used: {e}") from None
            if m is None:
                raise ExtractError(f"metric {d.name}: /{d.regex}/ matches nothing in {d.source}")
            raw: Any = m.group(1)
        else:
            try:
                raw = json.loads(text)
                for part in [p.replace("~1", "/").replace("~0", "~") for p in d.json_pointer.split("/")[1:]]:
                    raw = raw[int(part)] if isinstance(raw, list) else raw[part]
            except (ValueError, KeyError, IndexError, TypeError):
                raise ExtractError(f"metric {d.name}: {d.json_pointer} finds nothing in {d.source}") from None
        try:
            v = float(raw)
        except (TypeError, ValueError):
            raise ExtractError(f"metric {d.name}: {raw!r} in {d.source} is not a number") from None
        if not math.isfinite(v):
            raise ExtractError(f"metric {d.name}: {raw!r} in {d.source} is not finite")
        out[d.name] = v
    return out
