"""The Lua scripts and the key schema of ``dsx_connect.keys`` held together.

Every script is a ``.lua`` file of ``dsx_connect/state/lua/``. Scripts that still build keys from
the prefix (accept, skip: a batch across jobs; the monitor job, whose id is read in the script) spell
key fragments in Lua. Every fragment they use must be one this table maps to a ``keys`` function,
and each mapping must build the same key as that function: renaming a key in ``keys.py`` without
the Lua (or adding a fragment to Lua without the schema) fails here. Every other script (the
result store's, the scheduler's lease and claims, …) receives every key as KEYS: it must build none,
and its store must hand it what ``keys.py`` names.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from dsx_connect import keys
from dsx_connect.state import breaker as breaker
from dsx_connect.state import dead_letters as dlq_store
from dsx_connect.state import job_scripts as jobs_lua
from dsx_connect.state import monitor_jobs as monitor
from dsx_connect.state import results as results_store
from dsx_connect.state import schedule_lease, scripts
from dsx_connect.state import schedules as schedule_store
from shared.models import Verdict

pytestmark = pytest.mark.unit

SCRIPTS = {name: scripts.lua(name) for name in scripts.names()}

# fragment -> how keys.py builds the key (from the prefix, or from a job key for suffixes)
FROM_PREFIX: dict[str, Callable[[str], str]] = {
    ":job:": keys.job,
    ":req:": keys.request_state,
    ":results": lambda _: keys.RESULTS,
    ":results:idx": lambda _: keys.RESULTS_INDEX,
    ":results:seq": lambda _: keys.RESULTS_SEQ,
    ":stats": lambda _: keys.STATS,
    ":results:idx:verdict:": lambda v: keys.results_by("verdict", v),
    ":results:idx:connector:": lambda v: keys.results_by("connector", v),
    ":results:idx:job:": lambda v: keys.results_by("job", v),
}
JOB_SUFFIXES: dict[str, Callable[[str], str]] = {
    ":pending": keys.job_pending,
    ":due": keys.job_due,
    ":done": keys.job_done,
}


def fragments() -> set[str]:
    found: set[str] = set()
    for text in SCRIPTS.values():
        found |= set(re.findall(r"'(:[a-z_:-]+)'", text))
    return found


def test_every_key_fragment_in_lua_is_in_the_schema() -> None:
    assert {":job:", ":req:", ":pending", ":due", ":results"} <= fragments()  # the scan sees them
    unknown = fragments() - FROM_PREFIX.keys() - JOB_SUFFIXES.keys()
    assert not unknown, f"Lua builds keys keys.py does not define: {sorted(unknown)}"


@pytest.mark.parametrize("fragment", sorted(FROM_PREFIX))
def test_a_prefix_built_key_is_the_schema_key(fragment: str) -> None:
    value = "x1"
    lua_key = keys.PREFIX + fragment + (value if fragment.endswith(":") else "")
    assert lua_key == FROM_PREFIX[fragment](value)


@pytest.mark.parametrize("suffix", sorted(JOB_SUFFIXES))
def test_a_job_suffix_key_is_the_schema_key(suffix: str) -> None:
    assert keys.job("j1") + suffix == JOB_SUFFIXES[suffix]("j1")


# the scripts that build keys inside (from the prefix or a job key); any other, a new one too, takes KEYS
BUILDS_KEYS = frozenset({"accept", "skip", "monitor_current", "complete_check"})


@pytest.mark.parametrize("name", sorted(set(scripts.names()) - BUILDS_KEYS))
def test_a_script_outside_the_list_builds_no_key(name: str) -> None:
    text = scripts.lua(name)
    assert "prefix" not in text.lower(), f"{name}.lua builds keys from the prefix: pass them as KEYS"
    assert not re.findall(r"'(:[a-z_:-]+)'", text), f"{name}.lua spells key fragments: pass its keys as KEYS"


def test_the_result_script_builds_no_key() -> None:
    text = scripts.lua("results_store")
    assert "prefix" not in text
    assert not re.findall(r"'(:[a-z_:-]+)'", text), "the result script must receive its keys as KEYS"
    assert not re.search(r"'(Benign|Malicious)'", text), "verdict indexes come as KEYS, named in ARGV"


def test_the_result_store_hands_an_index_for_every_verdict() -> None:
    assert set(results_store.VERDICTS) == {v.value for v in Verdict}


def test_no_module_spells_a_key_outside_keys_py() -> None:
    root = Path(keys.__file__).parent
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if path.name != "keys.py" and re.search(r"[\"']" + keys.PREFIX + r":", path.read_text())
    ]
    assert not offenders, f"Redis keys spelled outside dsx_connect/keys.py: {offenders}"


def test_every_lua_file_is_a_script_a_store_registers() -> None:
    used = {v for k, v in vars(jobs_lua).items() if k.endswith("_LUA")} | {
        breaker._FAILED_LUA,
        dlq_store._REMOVE_LUA,
        results_store._STORE_LUA,
        monitor._CURRENT_LUA,
        schedule_store._CLAIM_LUA,
        schedule_lease._RENEW_LUA,
    }
    text = "\n".join(used)
    unused = [name for name in scripts.names() if scripts.lua(name) not in text]
    assert not unused, f"Lua files no store runs: {unused}"
