"""The promises about the code's shape and the docs derived from it, checked: generated
tables in sync, every variable documented, small modules, table names in one place, the
environment read in one place, a short README."""

import re
from pathlib import Path

import pytest

from watchme_pipeline import docs, schema
from watchme_pipeline.models.kinds import MODEL_KINDS
from watchme_pipeline.settings import AWS_SECRET_VARS
from watchme_pipeline.stages import STAGES
from watchme_pipeline.variables import VARIABLES

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "watchme_pipeline"


@pytest.mark.parametrize("page", sorted(docs.GENERATED))
def test_generated_tables_in_docs_match_the_code(page):
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    assert docs.render(page, text) == text, (
        f"docs/{page} differs from the code: run `python -m watchme_pipeline docs`")


@pytest.mark.parametrize("page", ["accuracy.md", "performance.md", "reliability.md"])
def test_measured_pages_are_what_the_benchmarks_results_say(page):
    import importlib.util

    # Loaded from its file: benchmarks/ on sys.path would shadow tests' own modules
    # (benchmarks/reliability.py for tests/reliability.py) in processes spawned later.
    spec = importlib.util.spec_from_file_location("benchmarks_report",
                                                  ROOT / "benchmarks" / "report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)

    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    assert report.render(page, text) == text, (
        f"docs/{page} differs from benchmarks/results: run `python benchmarks/report.py`")


def test_every_variable_settings_reads_is_documented_and_no_other():
    source = (PACKAGE / "settings.py").read_text(encoding="utf-8")
    read = set(re.findall(r'(?:env\.get\(|env\[|_number\(env, )"([A-Z0-9_]+)"', source))
    read -= {"AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"}  # older names, read as fallbacks
    read |= {k.variable for k in MODEL_KINDS.values()}  # read through the kinds' table
    read |= set(AWS_SECRET_VARS)  # whether they are set, by name
    documented = {name for v in VARIABLES for name in v.names}
    assert read == documented


@pytest.mark.parametrize("var", ["WATCHME_EMOTION_RUNTIME"])
def test_a_retired_option_stops_the_code_location_with_the_reason(var):
    from watchme_pipeline.settings import load_deployment

    with pytest.raises(ValueError, match=f"{var} is retired: .*ONNX Runtime"):
        load_deployment({var: "onnxruntime"})
    assert var not in {name for v in VARIABLES for name in v.names}


def test_no_production_module_is_over_300_lines():
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 300}
    assert long == {}


def test_a_stage_table_is_named_only_in_its_module_and_the_migrations():
    owners = {t.name: PACKAGE / "stages" / f"{s.name}.py" for s in STAGES for t in s.tables}
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "migrations" or path == PACKAGE / "stages" / "__init__.py":
            continue  # the SQL itself; the list of stage modules (a module may share its name)
        text = path.read_text(encoding="utf-8")
        for name, owner in owners.items():
            if path != owner:
                assert not re.search(rf"[\"']{name}[\"']", text), f"{name} in {path}"
    assert set(owners) <= set(schema.tables())


def test_the_environment_is_read_only_where_configuration_enters():
    readers = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
               if "os.environ" in p.read_text(encoding="utf-8")
               or "os.getenv" in p.read_text(encoding="utf-8")}
    assert readers <= {"settings.py", "definitions.py"}


def test_the_readme_is_a_front_door():
    readme = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(readme) <= 150
    for page in ("configuration", "operations", "architecture", "accuracy", "performance",
                 "reliability"):
        assert f"docs/{page}.md" in "\n".join(readme), page
        assert (ROOT / "docs" / f"{page}.md").exists()
