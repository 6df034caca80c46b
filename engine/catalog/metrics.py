"""Trial metrics are tool output, so they are validated like the study file: finite numbers in
plausible ranges, or the trial is a `parse_failure`.  A metric of 1e32 ps cannot win a stage."""
from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_METRICS_BYTES = 1 << 20  # a metrics file larger than this is not metrics
_BOUND = 1e15  # |value| of any metric without a range of its own

# name -> (lo, hi, integer); slacks in ps, power in W, area in µm²
RANGES: dict[str, tuple[float, float, bool]] = {
    "wns_ps": (-1e9, 1e9, False), "tns_ps": (-1e13, 1e9, False), "worst_slack_ps": (-1e9, 1e9, False),
    "failing_endpoints": (0, 1e9, True), "instances": (0, 1e9, True), "eco_changes": (0, 1e9, True),
    "unconstrained_endpoints": (0, 1e9, True), "area_um2": (0, 1e15, False),
    "power_total_w": (0, 1e6, False), "power_leakage_w": (0, 1e6, False), "power_internal_w": (0, 1e6, False),
    "power_switching_w": (0, 1e6, False), "hold_worst_ps": (-1e9, 1e9, False), "slack_max_ps": (0, 1e9, False), "hold_violations": (0, 1e9, True),
    "slew_violations": (0, 1e9, True), "cap_violations": (0, 1e9, True),
    # place and route (route modes)
    "hot_ratio": (0, 1, False), "congestion_max": (0, 1e6, False), "utilisation": (0, 100, False),
    "density_max": (0, 1e6, False), "rudy_max": (0, 1e6, False), "rudy_mean": (0, 1e6, False),
    "wirelength_um": (0, 1e15, False), "vias": (0, 1e12, True), "die_area_um2": (0, 1e15, False),
    "core_area_um2": (0, 1e15, False), "route_failed_nets": (0, 1e9, True), "route_passes": (0, 1e6, True),
    "route_failed_first_pass": (0, 1e9, True), "wirecap_nets": (0, 1e12, True),
}


def post_route_only(name: str) -> bool:
    """Metrics that exist only once a design is placed and routed."""
    return name in PHYSICAL or name.startswith("congestion_")


PHYSICAL = {"hot_ratio", "congestion_max", "utilisation", "density_max", "rudy_max", "rudy_mean", "wirelength_um",
            "vias", "die_area_um2", "core_area_um2", "route_failed_nets", "route_passes", "route_failed_first_pass",
            "wirecap_nets"}


class _Path(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    startpoint: str
    endpoint: str
    slack_ps: float = Field(ge=-1e9, le=1e9, allow_inf_nan=False)


class _Structured(BaseModel):
    """Metrics that are not single numbers."""

    model_config = ConfigDict(extra="forbid", strict=True)
    worst_paths: list[_Path] = Field(default=[], max_length=1000)
    warnings: list[str] = Field(default=[], max_length=1000)


STRUCTURED = set(_Structured.model_fields)


def check_metrics(m: Any, required: set[str] = frozenset()) -> str | None:
    """None when `m` is a valid metrics mapping, else why not (one line)."""
    if not isinstance(m, dict):
        return f"metrics must be a mapping of names to numbers, got {type(m).__name__}"
    missing = sorted(required - set(m))
    if missing:
        return f"missing metric(s) {', '.join(missing)}"
    try:
        _Structured.model_validate({k: v for k, v in m.items() if k in STRUCTURED})
    except ValidationError as e:
        err = e.errors()[0]
        return f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}"
    for k, v in m.items():
        if k in STRUCTURED:
            continue
        if not isinstance(k, str) or not k or len(k) > 64:
            return f"metric name {k!r} must be 1-64 characters"
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return f"{k} must be a number, got {type(v).__name__}"
        if not math.isfinite(v):
            return f"{k} is not finite ({v})"
        lo, hi, integer = RANGES.get(k, (-_BOUND, _BOUND, False))
        if not lo <= v <= hi:
            return f"{k} = {v:g} is outside the plausible range [{lo:g}, {hi:g}]"
        if integer and not float(v).is_integer():
            return f"{k} must be a whole number, got {v}"
    return None
