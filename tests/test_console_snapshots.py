"""SVG snapshots of the layout (pytest-textual-snapshot) at 80×24, 120×36 and 160×48 for the
picker, the live view of a running stage and help.  Update deliberately with
`pytest tests/test_console_snapshots.py --snapshot-update`, then look at the report."""
from __future__ import annotations

from pathlib import Path

import pytest

from console.app import Noodle2App
from tests.console_fixtures import T0, running_study, synthetic_study

SIZES = [(80, 24), (120, 36), (160, 48)]


@pytest.fixture
def root(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))
    base = tmp_path_factory.mktemp("snap")
    (base / "studies").mkdir()
    synthetic_study(base / "studies")
    running_study(base / "studies", interrupted=True)
    monkeypatch.chdir(base)  # a relative root, as an operator passes it, keeps titles stable
    return Path("studies")


def app(root):
    return Noodle2App(root, theme="dark", clock=lambda: T0 + 100, samples=root)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_picker(snap_compare, root, size):
    assert snap_compare(app(root), terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_live_view(snap_compare, root, size):
    # the picker lists the most recently active first: the interrupted study, mid stage 1
    assert snap_compare(app(root), terminal_size=size, press=["enter"])


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_help_screen(snap_compare, root, size):
    assert snap_compare(app(root), terminal_size=size, press=["enter", "question_mark"])
