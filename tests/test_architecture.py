"""The house as docs/architecture.md draws it: every module in a part, every import one its part
may make, no import cycle, policy without I/O, and a wheel with one top-level package."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

DOC = ROOT / "docs" / "architecture.md"
NO_IO = {"os", "io", "pathlib", "subprocess", "shutil", "socket", "time", "datetime", "urllib", "tempfile", "glob",
         "threading", "asyncio", "anyio"}


def parts() -> list[tuple[str, list[str], set[str]]]:
    """(part, module patterns, parts it may import) from the table between the markers."""
    text = DOC.read_text()
    table = text[text.index("<!-- parts"):text.index("<!-- /parts -->")]
    out = []
    for row in table.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] in ("part", "") or set(cells[0]) <= set("-"):
            continue
        mods = re.findall(r"`([^`]+)`", cells[1])
        may = set() if cells[3] == "—" else {x.strip() for x in cells[3].split(",")}
        out.append((cells[0], mods, may))
    return out


def modules() -> dict[str, Path]:
    """noodle2 module name -> file, for engine/ and console/."""
    out = {}
    for folder in ("engine", "console"):
        for p in (ROOT / folder).rglob("*.py"):
            rel = p.relative_to(ROOT).with_suffix("").parts
            name = ".".join(("noodle2", *rel))
            out[name.removesuffix(".__init__")] = p
    return out


def part_of(module: str, table: list[tuple[str, list[str], set[str]]]) -> str | None:
    """The part whose pattern matches the module: `study/models` before `study/`."""
    if module.startswith("noodle2.console"):
        return "console"
    path = module.removeprefix("noodle2.engine").lstrip(".").replace(".", "/") or "__init__"
    best: tuple[int, str] | None = None
    for name, pats, _ in table:
        for pat in pats:
            hit = (path + "/").startswith(pat) if pat.endswith("/") else path == pat
            if hit and (best is None or len(pat) > best[0]):
                best = (len(pat), name)
    return best[1] if best else None


def imports(p: Path, known: dict[str, Path]) -> set[str]:
    """noodle2 modules `p` imports, at any depth of the file (lazy imports count)."""
    out = set()
    for n in ast.walk(ast.parse(p.read_text())):
        if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("noodle2"):
            for a in n.names:
                sub = f"{n.module}.{a.name}"
                out.add(sub if sub in known else n.module)
        elif isinstance(n, ast.Import):
            out |= {a.name for a in n.names if a.name.startswith("noodle2")}
    return out


def test_the_table_is_read_and_covers_every_module():
    table = parts()
    assert [p for p, _, _ in table] == ["base", "catalog", "models", "journal", "policy", "executors", "tools", "study",
                                        "reports", "run", "console"]
    unplaced = [m for m in modules() if part_of(m, table) is None]
    assert not unplaced, f"modules in no part of docs/architecture.md: {unplaced}"


def test_every_import_is_one_its_part_may_make():
    table = parts()
    may = {name: allowed | {name, "base"} for name, _, allowed in table}
    known = modules()
    wrong = []
    for m, p in sorted(known.items()):
        mine = part_of(m, table)
        for dep in sorted(imports(p, known)):
            theirs = part_of(dep, table)
            if theirs is not None and theirs not in may[mine]:
                wrong.append(f"{m} ({mine}) imports {dep} ({theirs})")
    assert not wrong, "imports docs/architecture.md forbids:\n" + "\n".join(wrong)


def test_the_rule_fails_on_a_forbidden_import(tmp_path, monkeypatch):
    """The check above can fail: a policy module that imports the runner is caught."""
    table = parts()
    may = {name: allowed | {name, "base"} for name, _, allowed in table}
    assert part_of("noodle2.engine.run.engine", table) not in may[part_of("noodle2.engine.policy.ranking", table)]
    assert part_of("noodle2.console.app", table) not in may[part_of("noodle2.engine.run.engine", table)]
    assert part_of("noodle2.engine.study.models", table) == "models"
    assert part_of("noodle2.engine.study.validate", table) == "study"


def test_no_module_imports_itself_in_a_circle():
    known = modules()
    graph = {m: imports(p, known) & set(known) - {m} for m, p in known.items()}
    state: dict[str, int] = {}  # 1 on the path, 2 done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state and (cycle := visit(d)) is not None:
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)) is not None:
            pytest.fail("import cycle: " + " -> ".join(cycle))


def test_policy_does_no_io():
    for p in sorted((ROOT / "engine" / "policy").glob("*.py")):
        tree = ast.parse(p.read_text())
        for n in ast.walk(tree):
            names = [a.name for a in n.names] if isinstance(n, ast.Import) else \
                [n.module or ""] if isinstance(n, ast.ImportFrom) else []
            bad = [x for x in names if x.split(".")[0] in NO_IO or x == "noodle2.engine.fsutil"]
            assert not bad, f"{p.name} imports {bad}: policy code does no I/O"
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name):
                assert n.func.id not in ("open", "input", "print"), f"{p.name} calls {n.func.id}()"
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "random":
                assert n.attr == "Random", f"{p.name} uses random.{n.attr}: only random.Random(seed)"


def test_the_wheel_installs_one_top_level_package(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
                        "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    [wheel] = tmp_path.glob("noodle2-*.whl")
    with zipfile.ZipFile(wheel) as z:
        record = next(n for n in z.namelist() if n.endswith(".dist-info/RECORD"))
        files = [line.split(",")[0] for line in z.read(record).decode().splitlines() if line]
    tops = {f.split("/")[0] for f in files}
    assert tops == {"noodle2", record.split("/")[0]}, tops
    for data in ("noodle2/engine/tools/timing/eco_lib.tcl", "noodle2/themes/noodle2.tcss",
                 "noodle2/engine/tools/tech/sky130hd/tech.toml", "noodle2/sample_studies/quickstart.toml",
                 "noodle2/sample_studies/designs/gcd/gcd_sky130hd.spef"):
        assert data in files, f"{data} is not in the wheel"
    assert not [f for f in files if f.startswith(("noodle2/tests", "noodle2/benchmarks"))]
