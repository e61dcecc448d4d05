"""The scan step's two hooks: serve unchanged items from the index, remember what was scanned.

Both work on a whole batch with one round trip to the store. The cache never fails a scan: a store
that cannot answer is a miss for every item (they are read and scanned), one that cannot record
loses only future hits.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import redis

from dsx_connect.cache.identity import ScannerIdentity, version_url_for
from dsx_connect.cache.index import CACHEABLE_VERDICTS, Entry, IndexStore, cached_verdict, fresh
from dsx_connect.cache.settings import ScanCacheSettings
from dsx_connect.settings import Settings
from dsx_connect.state.scan_cache import RedisIndex
from dsx_connect.workers.context import WorkerContext
from dsx_connect.workers.hot_path import ScanConfig
from dsx_connect.workers.outcome import ConnectorRef, ItemOutcome
from shared.models import DsxaVerdict, ScanTask

log = logging.getLogger(__name__)

Pending = tuple[ScanTask, ConnectorRef]


@dataclass
class ScanCache:
    settings: ScanCacheSettings
    store: IndexStore
    identity: ScannerIdentity

    def split(self, items: list[Pending]) -> tuple[list[ItemOutcome], list[Pending]]:
        """The items served from the index (as outcomes), and those still to read and scan."""
        candidates = [i for i, (task, _) in enumerate(items) if task.item_version]
        if not candidates:
            return [], items
        identity = self.identity.current()
        if identity is None:
            return [], items
        keys = [(items[i][0].connector_uuid, items[i][0].location) for i in candidates]
        try:
            entries, forced = self.store.lookup(keys, [items[i][0].job_id for i in candidates])
        except Exception as exc:  # the cache must not stop scans
            log.warning("scan cache lookup failed, every item is scanned: %r", exc)
            return [], items
        hit: dict[int, ItemOutcome] = {}
        for i, entry in zip(candidates, entries, strict=True):
            task, ref = items[i]
            if task.job_id not in forced and fresh(entry, task.item_version, identity):
                assert entry is not None
                try:
                    verdict = cached_verdict(entry, identity)
                except Exception as exc:  # an entry this version cannot read (damaged, older): a miss
                    log.warning("scan cache: unreadable entry for %s, scanned: %r", task.location, exc)
                    continue
                hit[i] = ItemOutcome(
                    task=task, connector=ref, verdict=verdict, item_version=task.item_version
                )
        if not hit:
            return [], items
        return list(hit.values()), [item for i, item in enumerate(items) if i not in hit]

    def remember(self, outcomes: list[ItemOutcome], scanned_under: str | None = None) -> None:
        """Record the batch's fresh Benign/Malicious verdicts under the identity that gave them: the
        one its answer carries, else ``scanned_under`` (the identity known before the batch was
        scanned). Only under the scanner's identity as it is now: an answer of rules since replaced,
        an answer without one whose rules may have changed meanwhile, and anything from a scanner
        without an identity are not recorded."""
        scanned: list[tuple[ItemOutcome, DsxaVerdict, str]] = []
        for outcome in outcomes:
            verdict = outcome.verdict
            if verdict is None or outcome.error is not None or outcome.item_version is None:
                continue
            extra = verdict.model_extra or {}
            if extra.get("cached") or verdict.verdict not in CACHEABLE_VERDICTS:
                continue
            answered = extra.get("engine_version")
            if isinstance(answered, str) and answered:
                self.identity.observe(answered)
                scanned.append((outcome, verdict, answered))
            elif scanned_under is not None:
                scanned.append((outcome, verdict, scanned_under))
        if not scanned:
            return
        now = self.identity.current()  # asked again if an answer named another identity
        entries = [
            (
                (outcome.task.connector_uuid, outcome.task.location),
                Entry.of(outcome.item_version, identity, verdict),
            )
            for outcome, verdict, identity in scanned
            if identity == now and outcome.item_version is not None
        ]
        if not entries:
            return
        try:
            self.store.record(entries)
        except Exception as exc:
            log.warning("scan cache: %d entries not recorded: %r", len(entries), exc)


_caches: dict[int, ScanCache] = {}


def scan_cache(ctx: WorkerContext) -> ScanCache | None:
    """This process's cache, or None when ``DSXCONNECT_SCAN_CACHE__ENABLED`` is false."""
    settings = ctx.settings.scan_cache
    if not settings.enabled:
        return None
    pid = os.getpid()
    cache = _caches.get(pid)
    if cache is None:
        cache = _caches[pid] = build(ctx)
    return cache


def build(ctx: WorkerContext) -> ScanCache:
    return build_for(ctx.settings, ctx.client, ctx.scan_config)


def build_for(settings: Settings, client: redis.Redis, cfg: ScanConfig) -> ScanCache:
    """A cache over the settings' index store, asking the scanner of ``cfg`` for its identity."""
    cache_settings = settings.scan_cache
    identity = ScannerIdentity.over_http(
        cache_settings.version_url or version_url_for(cfg.scan_url),
        cfg.auth_token,
        cfg.scan_ssl,
        cache_settings.identity_ttl_s,
    )
    return ScanCache(cache_settings, store_for(settings, client), identity)


def store_for(settings: Settings, client: redis.Redis) -> IndexStore:
    """The SQL history's table when the results store is durable, else Redis (bounded)."""
    results_db = settings.results_db
    if results_db.durable:
        from dsx_connect.cache.sql import SqlIndex

        return SqlIndex.for_url(results_db.sql_url, client)
    return RedisIndex(client, settings.scan_cache.max_entries)
