"""SVG snapshots of the layout (pytest-textual-snapshot).  Update deliberately with
`pytest tests/test_console_snapshots.py --snapshot-update`, then look at the report."""
from __future__ import annotations

import pytest

from console.app import Noodle2App
from tests.console_fixtures import T0, synthetic_study


@pytest.fixture
def root(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))
    base = tmp_path_factory.mktemp("snap")
    (base / "studies").mkdir()
    synthetic_study(base / "studies")
    monkeypatch.chdir(base)  # a relative root, as an operator passes it, keeps titles stable
    from pathlib import Path
    return Path("studies")


def app(root):
    return Noodle2App(root, theme="dark", clock=lambda: T0 + 100, samples=root)


def test_picker(snap_compare, root):
    assert snap_compare(app(root), terminal_size=(100, 24))


def test_live_view_80x24(snap_compare, root):
    assert snap_compare(app(root), terminal_size=(80, 24), press=["enter"])


def test_live_view_160x48(snap_compare, root):
    assert snap_compare(app(root), terminal_size=(160, 48), press=["enter"])


def test_help_screen(snap_compare, root):
    assert snap_compare(app(root), terminal_size=(100, 30), press=["enter", "question_mark"])
