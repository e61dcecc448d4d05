"""The Lua scripts and the key schema of ``dsx_connect.keys`` held together.

Every script is a ``.lua`` file of ``dsx_connect/state/lua/`` and receives every key it touches as
KEYS: no script builds a key (no prefix, no key fragment, no concatenation onto a key), so renaming a
key in ``keys.py`` cannot leave a script behind, and every script is safe for Redis Cluster's
key-slot checks. The stores must hand the scripts what ``keys.py`` names; the behaviour tests of each
store (tests/dsx_connect/state, jobs, results) run the scripts against a real Redis.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dsx_connect import keys
from dsx_connect.state import breaker as breaker
from dsx_connect.state import connectors as connector_store
from dsx_connect.state import dead_letters as dlq_store
from dsx_connect.state import job_scripts as jobs_lua
from dsx_connect.state import monitor_jobs as monitor
from dsx_connect.state import results as results_store
from dsx_connect.state import schedule_lease, scripts
from dsx_connect.state import schedules as schedule_store
from shared.models import Verdict

pytestmark = pytest.mark.unit

SCRIPTS = {name: scripts.lua(name) for name in scripts.names()}

KEY_FRAGMENT = re.compile(r"'(:[a-z_:-]+)'")  # a quoted ':job:', ':pending', ...


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_a_script_builds_no_key(name: str) -> None:
    text = "\n".join(line.split("--", 1)[0] for line in SCRIPTS[name].splitlines())  # code, not comments
    assert "prefix" not in text, f"{name}.lua builds keys from the prefix"
    assert not KEY_FRAGMENT.findall(text), f"{name}.lua spells key fragments: pass the keys as KEYS"
    assert keys.PREFIX not in text, f"{name}.lua names a key"


def test_the_result_script_takes_no_verdict_from_its_text() -> None:
    text = scripts.lua("results_store")
    assert not re.search(r"'(Benign|Malicious)'", text), "verdict indexes come as KEYS, named in ARGV"


def test_the_result_store_hands_an_index_for_every_verdict() -> None:
    assert set(results_store.VERDICTS) == {v.value for v in Verdict}


def test_no_module_spells_a_key_outside_keys_py() -> None:
    root = Path(keys.__file__).parent
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if path.name != "keys.py"
        and re.search(r"[\"']" + keys.PREFIX + r":|\bkeys\.PREFIX\b|\bPREFIX\s*\}", path.read_text())
    ]
    assert not offenders, f"Redis keys spelled outside dsx_connect/keys.py: {offenders}"


def test_every_lua_file_is_a_script_a_store_registers() -> None:
    used = {v for k, v in vars(jobs_lua).items() if k.endswith("_LUA")} | {
        breaker._FAILED_LUA,
        dlq_store._REMOVE_LUA,
        results_store._STORE_LUA,
        results_store._OUTBOX_TRIM_LUA,
        results_store._OUTBOX_PARK_LUA,
        monitor._CURRENT_LUA,
        schedule_store._CLAIM_LUA,
        schedule_lease._RENEW_LUA,
        connector_store._PUT_LUA,
    }
    text = "\n".join(used)
    unused = [name for name in scripts.names() if scripts.lua(name) not in text]
    assert not unused, f"Lua files no store runs: {unused}"
