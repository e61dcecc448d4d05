"""Lua scripts of the job store: each one reads and updates a job hash atomically (standalone Redis).

The scripts are files in ``dsx_connect/state/lua/`` (each documents its KEYS and ARGV); these are
their texts, as the stores register them.

Every control change (pause, resume, cancel, enqueue_done, fail) bumps the hash's ``control_rev``;
with the counters that only grow (``accepted``, ``processed``, ``skipped``) it makes a job's ``rev``,
which increases with every change a reader can see (SSE event ids, ``job_view``).
"""

from dsx_connect.jobs.done import DONE_GROWTH_BYTES
from dsx_connect.state.scripts import lua

# Marks the job completed once enumeration is done and every accepted item has a result: a Lua
# function, prepended to the scripts that call it (the result script and enqueue_done).
COMPLETE_CHECK_LUA = lua("complete_check")
ENQUEUE_DONE_LUA = COMPLETE_CHECK_LUA + lua("enqueue_done")
# Whether a finished item's bit may be set in its job's done bitmap (dsx_connect.jobs.done): a Lua
# function, prepended to the scripts that set one (the result script and the skip)
DONE_FITS_LUA = f"local DONE_GROWTH_BYTES = {DONE_GROWTH_BYTES}\n" + lua("done_fits")
TRANSITION_LUA = lua("transition")
FAIL_LUA = lua("fail")
ACCEPT_LUA = lua("accept")
SKIP_LUA = DONE_FITS_LUA + lua("skip")
CLAIM_EXPIRED_LUA = lua("claim_expired")
