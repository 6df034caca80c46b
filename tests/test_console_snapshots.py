"""SVG snapshots of the layout (pytest-textual-snapshot) at 80×24, 120×36 and 160×48 for the
picker, the live view of a running stage and help.  Update deliberately with
`pytest tests/test_console_snapshots.py --snapshot-update`, then look at the report."""
from __future__ import annotations

from pathlib import Path

import pytest

from noodle2.console.app import Noodle2App
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


def test_trial_heatmap(snap_compare, root, monkeypatch):
    """A routed trial's detail, scrolled to its congestion map (truecolor half-blocks, legend)."""
    from noodle2.console.widgets.heatmap import Heatmap
    from tests.console_fixtures import synthetic_maps

    monkeypatch.setenv("COLORTERM", "truecolor")
    synthetic_maps(root / "synth-20270115-090000" / "trials" / "mac16_2_2")

    async def open_map(pilot):
        from tests.waiting import settle

        studies = pilot.app.screen.query_one("#studies")
        await settle(pilot, lambda: studies.row_count == 2, "both studies listed")
        studies.move_cursor(row=next(i for i in range(2) if "synth" in str(studies.get_row_at(i)[0])))
        await pilot.press("enter")  # the finished study, attached to its last stage
        table = await settle(pilot, lambda: pilot.app.screen.query_one("#trials"), "the trial table")
        await settle(pilot, lambda: table.row_count == 4, "the last stage's trials")
        table.move_cursor(row=next(i for i in range(table.row_count)
                                   if "mac16_2_2" in str(table.get_row_at(i)[0])))
        await pilot.press("enter", "m", "m", "y", "y")  # congestion, metal3
        await pilot.pause()
        pilot.app.screen.query_one(Heatmap).scroll_visible(animate=False, top=True)
        await pilot.pause()

    assert snap_compare(app(root), terminal_size=(100, 40), run_before=open_map)
