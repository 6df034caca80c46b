"""The study-file reference and the JSON Schema are generated from the models: a key added to
the models without its doc, or a doc edited by hand, fails here."""
from __future__ import annotations

import subprocess

import orjson

from noodle2.engine.study.docs import reference
from noodle2.engine.study.models import StudySpec
from tests.conftest import NOODLE2, ROOT, cli_env


def test_docs_study_file_md_is_the_generated_reference():
    assert (ROOT / "docs" / "study-file.md").read_text() == reference(), \
        "regenerate: .venv/bin/python -m noodle2.engine.study.docs > docs/study-file.md"


def test_every_key_is_documented():
    text = reference()
    for section, field in StudySpec.model_fields.items():
        model = field.annotation.__args__[0] if section == "stages" else field.annotation
        for key, f in model.model_fields.items():
            assert f.description, f"{section}.{key} has no description"
            assert f"| `{key}` |" in text


def test_schema_command_prints_a_json_schema_editors_can_use():
    r = subprocess.run([*NOODLE2, "schema"], cwd=ROOT, env=cli_env(), capture_output=True, text=True)
    assert r.returncode == 0
    schema = orjson.loads(r.stdout)
    assert schema["$schema"].startswith("http://json-schema.org/") and schema["title"] == "noodle2 study file"
    assert set(schema["required"]) == {"study", "design", "stages"}
    stage = schema["$defs"]["Stage"]["properties"]
    assert stage["repeat"]["maximum"] == 1000 and "chain" in stage["repeat"]["description"]


def test_every_error_code_is_documented_and_docs_errors_md_is_in_step():
    """Each N2-E code the code raises has a meaning and a fix; docs/errors.md is generated from them."""
    import re

    from noodle2.engine.errors import HINTS, MEANINGS, errors_markdown

    used = set()
    for part in ("engine", "console"):
        for p in (ROOT / part).rglob("*.py"):
            used |= set(re.findall(r"N2-E\d{3}", p.read_text()))
    assert used and used <= set(MEANINGS), sorted(used - set(MEANINGS))
    assert set(MEANINGS) <= set(HINTS), sorted(set(MEANINGS) - set(HINTS))
    assert (ROOT / "docs" / "errors.md").read_text() == errors_markdown()


def test_explain_prints_a_code_and_suggests_a_near_one():
    r = subprocess.run([*NOODLE2, "explain", "n2-e113"], cwd=ROOT, env=cli_env(), capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("N2-E113: The ranking") and "fix: " in r.stdout
    r = subprocess.run([*NOODLE2, "explain", "N2-E1133"], cwd=ROOT, env=cli_env(), capture_output=True, text=True)
    assert r.returncode == 2 and "did you mean N2-E113" in r.stderr


def test_bash_completion_completes_commands_and_options(tmp_path):
    script = tmp_path / "noodle2.bash"
    r = subprocess.run([*NOODLE2, "completion", "bash"], cwd=ROOT, env=cli_env(), capture_output=True, text=True)
    assert r.returncode == 0
    script.write_text(r.stdout)

    def complete(*words: str) -> list[str]:
        w = " ".join(f"'{x}'" for x in words)
        out = subprocess.run(["bash", "-c", f"source {script}; COMP_WORDS=({w}); COMP_CWORD={len(words) - 1}; _noodle2; "
                              'printf "%s\\n" "${COMPREPLY[@]}"'], capture_output=True, text=True, check=True)
        return out.stdout.split()

    assert sorted(complete("noodle2", "re")) == ["report", "resume"]
    assert complete("noodle2", "run", "--un") == ["--unattended"]
    assert "--json" in complete("noodle2", "status", "--")
    assert "completion" in complete("noodle2", "")
    for shell, needle in (("zsh", "#compdef noodle2"), ("fish", "__fish_seen_subcommand_from run' -l unattended")):
        r = subprocess.run([*NOODLE2, "completion", shell], cwd=ROOT, env=cli_env(), capture_output=True, text=True)
        assert r.returncode == 0 and needle in r.stdout, shell
