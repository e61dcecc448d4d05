"""Following clamd's signatures between reloads: freshclam updates clamd's database in place, and
its ``VERSION`` answer (database number and date) changes with it, so the identity (``/version``,
every answer's ``engine_version``; verdict caches key on it) must change too, or cached ``Benign``
verdicts of the old signatures would still be served.

clamd's version is asked again at most every ``DSXA_LITE_CLAMD_VERSION_INTERVAL_S`` (60 s), when a
request comes: in a worker thread, one ask at a time, never holding up a scan (scans go on with
the current rule set meanwhile); ``/version`` waits for it, up to ``VERSION_WAIT_S``, so the
identity it answers is current. When the answer changed, a rule set with the same engines and the
new identity (:meth:`RuleSet.with_clamd_version`) is swapped in, as a reload swaps one, and the
by-hash verdicts of the old one are forgotten. A scan keeps the rule set it started with, so its
answer names the old identity even if clamd's database changed meanwhile: a cache can only take
it for older than it is.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref

import anyio.to_thread

from dsxa_lite.engines.clamav import ClamavEngine, ClamdError
from dsxa_lite.ruleset import RuleSet
from dsxa_lite.service import ScanService

log = logging.getLogger("dsxa_lite")

#: how long ``/version`` waits for clamd's answer before it answers the identity it knows
VERSION_WAIT_S = 5.0

# the ask in progress, by service (one at a time)
_asking: weakref.WeakKeyDictionary[ScanService, asyncio.Task[None]] = weakref.WeakKeyDictionary()


def follow_clamd(service: ScanService) -> asyncio.Task[None] | None:
    """Ask clamd its version again in the background when the last ask is older than the
    interval; the ask in progress, if any (call on the event loop; returns at once)."""
    clamav = service.ruleset.clamav
    if clamav is None:
        return None
    task = _asking.get(service)
    if task is not None and not task.done():
        return task
    if time.monotonic() - clamav.version_asked_at < service.settings.clamd_version_interval_s:
        return None
    clamav.version_asked_at = time.monotonic()  # one ask, whatever comes before it starts
    task = asyncio.get_running_loop().create_task(_ask(service, service.ruleset, clamav))
    _asking[service] = task
    return task


async def current_ruleset(service: ScanService) -> RuleSet:
    """The rule set, clamd's version asked again first when it is due (waits up to
    ``VERSION_WAIT_S`` for the answer)."""
    task = follow_clamd(service)
    if task is not None:
        await asyncio.wait({task}, timeout=VERSION_WAIT_S)
    return service.ruleset


async def _ask(service: ScanService, ruleset: RuleSet, clamav: ClamavEngine) -> None:
    try:
        version = await anyio.to_thread.run_sync(clamav.version)
    except ClamdError as exc:  # scans say so themselves (a 500 the core retries)
        log.warning("cannot ask clamd its version", extra={"error": str(exc)})
        return
    if version == ruleset.clamd_version or service.ruleset is not ruleset:
        return  # unchanged, or a reload swapped in a rule set that asked clamd itself
    fresh = ruleset.with_clamd_version(version)
    service.ruleset = fresh  # on the event loop, as a reload swaps it
    service.cache.clear()  # keyed by the old identity: no lookup would find them again
    log.info(
        "clamd's signatures changed; the identity follows",
        extra={
            "clamd_version": version,
            "previous_clamd_version": ruleset.clamd_version,
            "rules_version": fresh.rules_version,
            "identity": fresh.identity,
        },
    )
