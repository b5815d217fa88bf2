"""schemas/ is generated from the code (``python -m fst_ray.schemas``) and must stay in step with it: the
check fails on a stale, missing or orphaned file; every registered config, result and table has its file;
every module that registers something is one the command imports; config schemas reject unknown keys."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pydantic
import pytest

from fst_ray import config, schemas, tables

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "fst_ray"
REGISTRARS = {"register_config", "register_result", "register_table"}


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    """File name -> text, as the command would write them (this also imports every module in MODULES)."""
    return schemas.render()


@pytest.mark.slow
def test_schemas_dir_is_fresh():
    out = subprocess.run([sys.executable, "-m", "fst_ray.schemas", "--check"], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


def test_check_reports_stale_missing_and_orphaned_files(tmp_path, capsys, rendered):
    copy = tmp_path / "schemas"
    shutil.copytree(schemas.SCHEMA_DIR, copy)
    edited, deleted = sorted(rendered)[:2]
    (copy / edited).write_text((copy / edited).read_text().replace('"', "'", 1))
    (copy / deleted).unlink()
    (copy / "config.gone.json").write_text("{}\n")

    assert schemas.main(["--check", "--dir", str(copy)]) == 1
    report = capsys.readouterr().out
    for name in (edited, deleted, "config.gone.json"):
        assert f"schemas/{name}" in report

    assert schemas.main(["--dir", str(copy)]) == 0  # regenerate
    assert schemas.main(["--check", "--dir", str(copy)]) == 0
    assert {p.name: p.read_text() for p in copy.glob("*.json")} == rendered


def test_every_registered_model_and_table_has_a_schema_file(rendered):
    expected = (
        [f"config.{n}.json" for n in config.CONFIGS]
        + [f"result.{n}.json" for n in config.RESULTS]
        + [f"table.{n}.json" for n in tables.TABLES]
    )
    assert expected, "nothing is registered"
    missing = [n for n in expected if not (schemas.SCHEMA_DIR / n).is_file()]
    assert missing == [], f"run: python -m fst_ray.schemas (missing {missing})"
    assert sorted(expected) == sorted(rendered)


def registering_modules() -> set[str]:
    """Modules of fst_ray/ that call register_config / register_result / register_table."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in REGISTRARS:
                    found.add(".".join(path.relative_to(REPO).with_suffix("").parts))
    return found


def test_every_registering_module_is_listed_in_MODULES():
    # fst_ray.tables registers the shared tables and is imported by fst_ray.schemas itself.
    unlisted = registering_modules() - set(schemas.MODULES) - {"fst_ray.tables"}
    assert unlisted == set(), f"add to MODULES in fst_ray/schemas.py: {sorted(unlisted)}"


@pytest.mark.parametrize("kind", ["config", "result"])
def test_model_schemas_are_valid_and_closed(kind, rendered):
    registry = config.CONFIGS if kind == "config" else config.RESULTS
    for name, model in registry.items():
        schema = json.loads((schemas.SCHEMA_DIR / f"{kind}.{name}.json").read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        errors = jsonschema.Draft202012Validator(schema).iter_errors({"not_a_field": 1})
        assert any(e.validator == "additionalProperties" for e in errors), f"{kind} {name}"
        if all(not f.is_required() for f in model.model_fields.values()):
            # A model that needs no input must satisfy its own schema, as pydantic dumps it
            # (some, e.g. the sweep's, still need one of several optional parts: a model-level rule).
            try:
                instance = model()
            except pydantic.ValidationError:
                continue
            jsonschema.validate(instance.model_dump(mode="json"), schema)


def test_table_schema_files_document_every_field(rendered):
    for name, arrow in tables.TABLES.items():
        described = json.loads((schemas.SCHEMA_DIR / f"table.{name}.json").read_text())
        assert [f["name"] for f in described["fields"]] == arrow.names, name
        undocumented = [f["name"] for f in described["fields"] if not f["doc"]]
        assert undocumented == [], f"table {name}: fields without a doc: {undocumented}"
        assert described["doc"], f"table {name} has no doc"
