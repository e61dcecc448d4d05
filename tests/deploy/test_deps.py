"""scripts/deps: what `make test` installs on a clean Debian host covers what the tests need
when CI runs them with DSX_REQUIRE_EMULATORS=1 (a missing peer fails instead of skipping)."""

from __future__ import annotations

import re

import pytest

from tests.deploy.conftest import REPO

pytestmark = pytest.mark.unit

APT_LIST = REPO / "scripts" / "deps" / "apt-packages.txt"
ENSURE_DEPS = REPO / "scripts" / "ensure-deps.sh"


def apt_packages() -> list[str]:
    """The packages as ensure-deps.sh's apt_list reads them: `#` comments and spaces dropped."""
    names = [line.split("#", 1)[0].replace(" ", "") for line in APT_LIST.read_text().splitlines()]
    return [name for name in names if name]


def test_npm_is_installed_when_missing_but_never_over_a_nodesource_nodejs() -> None:
    """Azurite (tests/connectors/azure_blob_storage) comes from `npm install` of scripts/deps/package.json:
    without npm ensure_node skips it and every Azurite test fails under DSX_REQUIRE_EMULATORS. Debian's
    npm package conflicts with a NodeSource nodejs (which brings its own npm): listing it among the
    apt packages broke `make test` there ("held broken packages"); it is installed only when no npm
    is on PATH."""
    assert "npm" not in apt_packages()
    assert "azurite" in (REPO / "scripts" / "deps" / "package.json").read_text()
    script = ENSURE_DEPS.read_text()
    node = script[script.index("ensure_node() {") :]
    node = node[: node.index("\n}\n")]
    assert "command -v npm >/dev/null || ensure_system npm" in node


def test_dashboard_tests_report_a_missing_browser_through_missing() -> None:
    """A module-level pytest.skip bypasses DSX_REQUIRE_EMULATORS: tests/dashboard/conftest.py's
    autouse fixture calls tests.support.emulators.missing() for them all."""
    conftest = (REPO / "tests" / "dashboard" / "conftest.py").read_text()
    assert "missing(" in conftest and "autouse=True" in conftest
    for path in sorted((REPO / "tests" / "dashboard").glob("test_*.py")):
        text = path.read_text()
        assert not re.search(r"pytest\.skip\([^)]*CHROMIUM", text, re.S), path.name
