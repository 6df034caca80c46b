"""Themes from themes/*.toml; the choice is --theme, else NOODLE2_THEME, else the remembered one.
An unknown name given by the operator is an error that lists the valid ones; a remembered one
that no longer exists falls back to dark."""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from noodle2.engine import DATA

if TYPE_CHECKING:  # Textual loads in ~1 s: every CLI command lists the theme names, few draw them
    from textual.theme import Theme

THEMES_DIR = DATA / "themes"
SHORT = {"dark": "noodle2-dark", "light": "noodle2-light", "high-contrast": "noodle2-high-contrast"}


class UnknownTheme(ValueError):
    pass


def load_themes() -> list[Theme]:
    from textual.theme import Theme

    out = []
    for f in sorted(THEMES_DIR.glob("*.toml")):
        d = tomllib.loads(f.read_text())
        out.append(Theme(**d))
    return out


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "noodle2" / "console.json"


def remembered() -> str | None:
    try:
        return orjson.loads(config_path().read_bytes()).get("theme")
    except (OSError, orjson.JSONDecodeError, AttributeError):
        return None


def remember(theme: str) -> None:
    p = config_path()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(orjson.dumps({"theme": theme}))
    except OSError:
        pass  # a read-only home must not break the console


def _full(name: str) -> str | None:
    return SHORT.get(name) or (name if name in SHORT.values() else None)


def choose(cli: str | None) -> str:
    for source, name in (("--theme", cli), ("NOODLE2_THEME", os.environ.get("NOODLE2_THEME"))):
        if name:
            full = _full(name)
            if full is None:
                raise UnknownTheme(f"unknown theme {name!r} (from {source}); use one of: {', '.join(SHORT)}")
            return full
    return _full(remembered() or "") or SHORT["dark"]
