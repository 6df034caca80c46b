"""Plugins in their own packages: entry points `noodle2.ecos` and `noodle2.metrics`.

Each entry point names a list of definitions (or a function returning one), dicts with the keys of
[[custom.ecos]] or [[custom.metrics]].  A study uses a plugin ECO by naming it in a stage and a
plugin metric through [custom] plugin_metrics, so installing a plugin changes no other study.
"""
from __future__ import annotations

from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any


def _load(group: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for ep in entry_points(group=group):
        try:
            obj = ep.load()
            items = obj() if callable(obj) else obj
        except Exception as e:  # noqa: BLE001 - a broken plugin is reported, never fatal to others
            out.append((f"plugin:{ep.name}", {"__error__": f"{type(e).__name__}: {e}"}))
            continue
        dist = ep.dist.name if ep.dist is not None else ep.name
        out += [(f"plugin:{dist}", dict(item)) for item in items if isinstance(item, dict)]
    return out


@lru_cache(maxsize=1)
def plugin_ecos() -> tuple:
    from noodle2.engine.study.models import CustomEco

    out = []
    for source, item in _load("noodle2.ecos"):
        if "__error__" in item:
            continue
        try:
            out.append(CustomEco.model_validate({**item, "source": source}))
        except ValueError:
            continue  # `noodle2 ecos` shows what loaded; an unusable definition is simply not offered
    return tuple(out)


@lru_cache(maxsize=1)
def plugin_metrics() -> tuple:
    from noodle2.engine.study.models import CustomMetric

    out = []
    for source, item in _load("noodle2.metrics"):
        if "__error__" in item:
            continue
        try:
            out.append(CustomMetric.model_validate({**item, "source_name": source}))
        except ValueError:
            continue
    return tuple(out)


def broken() -> list[str]:
    """Plugins that failed to load, for `noodle2 ecos`."""
    return [f"{src}: {item['__error__']}" for group in ("noodle2.ecos", "noodle2.metrics")
            for src, item in _load(group) if "__error__" in item]
