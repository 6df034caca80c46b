"""Parsers for OpenSTA 2.0.17 report text.  Malformed input raises ParseError with an excerpt."""
from __future__ import annotations

import re
from typing import Any


class ParseError(ValueError):
    def __init__(self, what: str, text: str) -> None:
        super().__init__(what)
        self.excerpt = text[-600:]


_NUM = r"(-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"


def parse_wns_tns(text: str, unit_ps: float = 1000.0) -> dict[str, float]:
    """`report_wns` / `report_tns` / `report_worst_slack` lines, in the Liberty's time unit
    (`unit_ps`: 1000 for ns, 1 for ps), as ps."""
    out: dict[str, float] = {}
    for key, name in (("wns", "wns_ps"), ("tns", "tns_ps"), ("worst slack", "worst_slack_ps")):
        m = re.search(rf"^{key}\s+{_NUM}\s*$", text, re.M)
        if m:
            out[name] = round(float(m.group(1)) * unit_ps, 3)
    if "wns_ps" not in out or "tns_ps" not in out:
        raise ParseError("no 'wns' and 'tns' lines in the slack report", text)
    return out


def parse_power(text: str) -> dict[str, float]:
    """The `Total` row of `report_power`: internal, switching, leakage, total (W)."""
    m = re.search(rf"^Total\s+{_NUM}\s+{_NUM}\s+{_NUM}\s+{_NUM}", text, re.M)
    if not m:
        raise ParseError("no 'Total' row in the power report", text)
    internal, switching, leakage, total = (float(x) for x in m.groups())
    return {"power_internal_w": internal, "power_switching_w": switching, "power_leakage_w": leakage,
            "power_total_w": total}


_PATH_HEAD = re.compile(r"^Startpoint:\s+(\S+).*?^Endpoint:\s+(\S+)", re.M | re.S)


def parse_paths(text: str, unit_ps: float = 1000.0) -> list[dict[str, Any]]:
    """Each path of `report_checks`: start, end, arrival, required (ns), slack (ps), and the
    cells on it; the report speaks the Liberty's time unit (`unit_ps` ps each)."""
    blocks = re.split(r"(?=^Startpoint:)", text, flags=re.M)
    out = []
    for b in blocks:
        if not b.startswith("Startpoint:"):
            continue
        head = _PATH_HEAD.search(b)
        arr = re.search(rf"^\s*{_NUM}\s+data arrival time", b, re.M)
        req = re.search(rf"^\s*{_NUM}\s+data required time", b, re.M)
        slack = re.search(rf"^\s*{_NUM}\s+slack \((MET|VIOLATED)\)", b, re.M)
        if not (head and arr and req and slack):
            raise ParseError("a path in the timing report lacks start/end/arrival/required/slack", b[:600])
        cells = re.findall(r"[\^v] \S+ \((\w+)\)$", b, re.M)
        out.append({"startpoint": head.group(1), "endpoint": head.group(2),
                    "arrival_ns": round(float(arr.group(1)) * unit_ps / 1000.0, 6),
                    "required_ns": round(float(req.group(1)) * unit_ps / 1000.0, 6),
                    "slack_ps": round(float(slack.group(1)) * unit_ps, 3), "met": slack.group(2) == "MET",
                    "stages": len(cells)})
    if not out and "No paths found" not in text:
        raise ParseError("no paths in the timing report", text)
    return out


def parse_n2m(stdout: str) -> dict[str, float]:
    """`N2M key value` lines that the trial script prints."""
    out: dict[str, float] = {}
    for m in re.finditer(rf"^N2M ([\w@]+) {_NUM}\s*$", stdout, re.M):
        out[m.group(1)] = float(m.group(2))
    return out
