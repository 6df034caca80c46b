"""Formatting shared by every view: numbers with their units, plurals."""
from __future__ import annotations

from typing import Any


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def fmt_ns(ps: float | None) -> str:
    return "—" if ps is None else f"{ps / 1000:+.3f}"


# The unit rule for every view (console, report, plots, compare, ci): times in ns, power in mW,
# area in µm², wirelength in mm, always labelled.  Metric keys keep their stored unit (wns_ps).
UNITS: dict[str, tuple[str, str, float, int]] = {  # key: (label, unit, scale from the stored unit, decimals)
    "wns_ps": ("WNS", "ns", 1e-3, 3), "pre_wns_ps": ("WNS pre-route", "ns", 1e-3, 3), "tns_ps": ("TNS", "ns", 1e-3, 3),
    "pre_tns_ps": ("TNS pre-route", "ns", 1e-3, 3), "failing_endpoints": ("failing endpoints", "", 1, 0),
    "hold_worst_ps": ("hold slack", "ns", 1e-3, 3), "hold_violations": ("hold violations", "", 1, 0),
    "slew_violations": ("max-transition violations", "", 1, 0), "cap_violations": ("max-capacitance violations", "", 1, 0),
    "power_total_w": ("power", "mW", 1e3, 3), "power_leakage_w": ("leakage", "mW", 1e3, 5),
    "area_um2": ("area", "µm²", 1, 0), "instances": ("instances", "", 1, 0), "eco_changes": ("ECO changes", "", 1, 0),
    "hot_ratio": ("hot bins", "share", 1, 4), "congestion_max": ("congestion max", "", 1, 3),
    "rudy_max": ("RUDY max", "", 1, 3), "wirelength_um": ("wirelength", "mm", 1e-3, 2), "vias": ("vias", "", 1, 0),
    "utilisation": ("utilisation", "", 1, 3), "route_failed_nets": ("unrouted nets", "", 1, 0),
    "sta_warnings": ("sta warnings", "", 1, 0)}
_SUFFIX = {"_ps": ("ns", 1e-3, 3), "_ns": ("ns", 1, 3), "_w": ("mW", 1e3, 3), "_um2": ("µm²", 1, 0), "_um": ("mm", 1e-3, 2)}


def metric_unit(key: str) -> tuple[str, str, float, int]:
    """(label, unit, scale from the stored value, decimals) for a metric, corners included (wns_ps@slow)."""
    base, _, corner = key.partition("@")
    if base in UNITS:
        label, unit, scale, digits = UNITS[base]
    else:
        label, (unit, scale, digits) = base, next((v for k, v in _SUFFIX.items() if base.endswith(k)), ("", 1, 3))
    return (f"{label} @{corner}" if corner else label), unit, scale, digits


def metric_axis(key: str, delta: bool = False, column: bool = False) -> str:
    """A plot axis `WNS (ns)`, `ΔWNS (ns)`; with `column`, a table heading `WNS ns`."""
    label, unit, _, _ = metric_unit(key)
    label = ("Δ" if delta else "") + label
    return label if not unit else f"{label} {unit}" if column else f"{label} ({unit})"


def fmt_metric(key: str, v: Any, sign: bool = False, unit: bool = True) -> str:
    """A metric value in its display unit: `-1.234 ns`, `12.500 mW`; `—` when absent."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return "—"
    _, u, scale, digits = metric_unit(key)
    text = f"{v * scale:{'+' if sign else ''},.{digits}f}"
    return f"{text} {u}" if unit and u else text


def fmt_num(v: float, integer: bool = False) -> str:
    """A parameter or limit as a person writes it: 1000000 (not 1e+06), 2000 (not 2000.0), 0.25."""
    if integer or (float(v).is_integer() and abs(v) < 1e15):
        return str(int(v))
    return f"{v:.6g}"


# a policy decision as a person says it (the journal keeps the action's name)
DECISIONS = {"disable_eco": "ECO {subject} disabled", "disable_class": "ECO class {subject} disabled",
             "skip_eco": "ECO {subject} skipped", "abort_stage": "stage {subject} aborted",
             "block_study": "study blocked by {subject}", "plateau": "study ends early ({subject})",
             "order_ecos": "ECOs ordered by their priors: {subject}", "goal_met": "study ends early: goal met by {subject}",
             "stop_early": "stage {subject} stops early"}


def decision_text(action: str, subject: str) -> str:
    return DECISIONS.get(action, action.replace("_", " ") + " {subject}").format(subject=subject)


def fmt_local(ts: float | None, seconds: bool = False, date: bool = True, zone: bool = True) -> str:
    """A journal timestamp (UTC seconds) as people read it: local time with its zone (a table
    without `zone` names it once in its heading: local_zone())."""
    import time

    if ts is None:
        return "—"
    fmt = ("%Y-%m-%d " if date else "") + ("%H:%M:%S" if seconds else "%H:%M") + (" %Z" if zone else "")
    return time.strftime(fmt, time.localtime(ts))


def local_zone() -> str:
    import time

    return time.strftime("%Z")


def fmt_seconds(x: float | None) -> str:
    """A duration as every view prints it: 0.4s, 5.5s, 29.5s, 312s."""
    if x is None:
        return ""
    return f"{x:.1f}s" if x < 100 else f"{x:.0f}s"
