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
