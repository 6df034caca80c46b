"""Make the README's report picture: run the quickstart study, write its report, and copy the
trajectory plot to docs/report-trajectory.png.

    .venv/bin/python docs/make_report_screenshot.py
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    with tempfile.TemporaryDirectory() as t:
        d = Path(t) / "quickstart"
        cli = [sys.executable, "-m", "console.cli"]
        subprocess.run([*cli, "run", str(ROOT / "sample_studies" / "quickstart.toml"), "--unattended",
                        "--study-dir", str(d)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        subprocess.run([*cli, "report", str(d)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        shutil.copyfile(d / "report" / "trajectory.png", ROOT / "docs" / "report-trajectory.png")
    print("wrote docs/report-trajectory.png")


if __name__ == "__main__":
    main()
