"""Themes from themes/*.toml; the choice is --theme, else NOODLE2_THEME, else the remembered one."""
from __future__ import annotations

import os
import tomllib
from pathlib import Path

import orjson
from textual.theme import Theme

THEMES_DIR = Path(__file__).resolve().parents[1] / "themes"
SHORT = {"dark": "noodle2-dark", "light": "noodle2-light", "high-contrast": "noodle2-high-contrast"}


def load_themes() -> list[Theme]:
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
    except (OSError, orjson.JSONDecodeError):
        return None


def remember(theme: str) -> None:
    p = config_path()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(orjson.dumps({"theme": theme}))
    except OSError:
        pass  # a read-only home must not break the console


def choose(cli: str | None) -> str:
    name = cli or os.environ.get("NOODLE2_THEME") or remembered() or "dark"
    return SHORT.get(name, name)
