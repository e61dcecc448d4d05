"""Python versions: the images run the platform's 3.12, and the package says which versions it is tested on."""

from __future__ import annotations

import re
import tomllib

import pytest

from tests.deploy.conftest import REPO

pytestmark = pytest.mark.unit

TESTED = ("3.11", "3.12")  # .venv and .venv312 (scripts/ensure-deps.sh py312, `make test-unit-312`)


def test_every_python_image_is_3_12() -> None:
    dockerfiles = sorted(REPO.glob("**/Dockerfile"))
    dockerfiles = [p for p in dockerfiles if ".venv" not in p.parts and "node_modules" not in p.parts]
    bases = {
        str(p.relative_to(REPO)): re.findall(r"^FROM\s+python:(\S+)", p.read_text(), re.M)
        for p in dockerfiles
    }
    assert bases and all(found for found in bases.values()), bases
    assert {path: [b for b in found if not b.startswith("3.12")] for path, found in bases.items()} == {
        path: [] for path in bases
    }


def test_requires_python_and_classifiers_name_the_tested_versions() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == f">={TESTED[0]}"
    listed = {c.rsplit(" ", 1)[1] for c in project["classifiers"] if re.search(r":: \d+\.\d+$", c)}
    assert listed == set(TESTED)


def test_make_test_runs_the_unit_tests_on_3_12_too() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^test: .*\n(\t.*\n)*\t@\$\(MAKE\) --no-print-directory test-unit-312$", makefile, re.M)
    assert "ensure_py312" in (REPO / "scripts" / "ensure-deps.sh").read_text()
