"""Redis memory of the platform: what ``inv bench`` reports, and the bytes each kind of item costs.

``redis_memory`` reads a running Redis (``INFO memory``) and counts its keys by family, with bytes
from ``MEMORY USAGE`` on a sample of each. ``bytes_per_item`` drives the real job and result
stores against a scratch Redis database and reports what one in-flight item, one retained result,
one tombstone key and one tombstone bit cost (``docs/performance.md`` quotes it):

    python -m scripts.bench_memory --redis-url redis://127.0.0.1:6379/15   # the database is flushed
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

_ID = re.compile(r"[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


FILES_ROOT = Path(tempfile.gettempdir()) / "dsx-bench-files"


def file_tree(
    count: int, min_kib: int, max_kib: int, make: Callable[[Path, int, int, int], int]
) -> tuple[Path, int]:
    """A generated tree of ``count`` files, reused from an earlier run when one is complete.

    Trees live under ``$TMPDIR/dsx-bench-files``, keyed by count and sizes; ``make`` (the bench's
    generator) fills a new one. Returns the folder and its total bytes.
    """
    folder = FILES_ROOT / f"{count}x{min_kib}-{max_kib}k-v2"  # v2: files start with the bench's prefix
    marker = folder.with_name(folder.name + ".complete")  # beside it: the connector scans every file inside
    if marker.exists():
        return folder, int(marker.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    total = make(folder, count, min_kib, max_kib)
    marker.write_text(str(total))
    return folder, total


def remove_tree(folder: Path) -> None:
    """Remove a generated tree and its completion marker."""
    folder.with_name(folder.name + ".complete").unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)


def first_files(folder: Path, count: int, limit: int) -> list[Path]:
    """The first ``limit`` files of a generated tree, named without listing a million of them."""
    return [folder / f"d{n // 100:04d}" / f"f{n:07d}.bin" for n in range(min(count, limit))]


def family(key: str) -> str:
    """A key with its ids and nonces blanked: ``dsxc:req:<id>``, ``dsxc:job:<id>:done``."""
    key = _ID.sub("<id>", key)
    return re.sub(r"^(dsxc:auth:nonce:)[^:]+:.*$", r"\1<key>:<nonce>", key)


def redis_memory(client: redis.Redis, sample: int = 50) -> dict[str, Any]:
    """``INFO memory`` figures and the keys by family: count and bytes (sampled ``MEMORY USAGE``)."""
    info = client.info("memory")
    counts: Counter[str] = Counter()
    sampled: dict[str, list[int]] = {}
    for key in client.scan_iter(count=1000):
        name = key.decode() if isinstance(key, bytes) else key
        fam = family(name)
        counts[fam] += 1
        if len(sampled.setdefault(fam, [])) < sample:
            sampled[fam].append(int(client.memory_usage(name, samples=0) or 0))
    families = {
        fam: {"keys": n, "mb": round(n * sum(sampled[fam]) / len(sampled[fam]) / 1e6, 2)}
        for fam, n in counts.items()
    }
    families = dict(sorted(families.items(), key=lambda kv: -kv[1]["mb"]))
    return {
        "used_memory_mb": round(info["used_memory"] / 1e6, 1),
        "used_memory_peak_mb": round(info["used_memory_peak"] / 1e6, 1),
        "used_memory_rss_mb": round(info["used_memory_rss"] / 1e6, 1),
        "families": dict(list(families.items())[:20]),
    }


def bytes_per_item(client: redis.Redis, count: int = 20_000) -> dict[str, float]:
    """What each kind of item costs, measured by driving the real stores (the database is flushed)."""
    from dsx_connect.state.jobs import JobStore
    from dsx_connect.state.results import ResultStore
    from shared.models import EventConnector, EventFileInfo, ScanResultEvent, ScanTask

    def used() -> int:
        return int(client.info("memory")["used_memory"])

    def tasks(job_id: str, numbered: bool) -> list[ScanTask]:
        return [
            ScanTask(
                id=f"{n:032x}", connector_uuid="0f0e6a4c-54b5-5d2a-9cd1-0d7e1e1e0b7c",
                connector_name="filesystem-connector", location=f"d{n // 100:04d}/f{n:07d}.bin",
                metainfo=f"d{n // 100:04d}/f{n:07d}.bin", size_in_bytes=2560, job_id=job_id,
                job_item_id=str(n) if numbered else None, accepted_at="2026-12-04T18:00:00.000Z",
            )
            for n in range(1, count + 1)
        ]  # fmt: skip

    def events(batch: list[ScanTask]) -> list[ScanResultEvent]:
        return [
            ScanResultEvent(
                scan_request_id=t.id, job_id=t.job_id, location=t.location, metainfo=t.metainfo,
                connector=EventConnector(name="filesystem-connector", uuid=t.connector_uuid),
                verdict="Benign", file_info=EventFileInfo(size_in_bytes=2560, sha256="ab" * 32),
            )
            for t in batch
        ]  # fmt: skip

    def accepted_then_stored(searched: bool) -> tuple[str, float, float]:
        """A fresh job's items accepted, then stored: (job id, bytes per in-flight item, per result)."""
        client.flushdb()
        job_id = jobs.create("0f0e6a4c-54b5-5d2a-9cd1-0d7e1e1e0b7c", "filesystem-connector")
        batch = tasks(job_id, numbered=True)
        before = used()
        for start in range(0, count, 500):
            jobs.record_accepted(batch[start : start + 500], ttl_s=3600)
        in_flight = (used() - before) / count
        results = ResultStore(client, retain=count, request_ttl_s=3600, searched=searched)
        before = used()
        for start in range(0, count, 500):
            part = batch[start : start + 500]
            results.store_many(events(part), [t.job_item_id for t in part])
        # the in-flight state went away, the result (with its indexes) and the bit came
        return job_id, in_flight, (used() - before) / count + in_flight

    jobs, figures = JobStore(client), {}
    job_id, figures["in_flight_item"], figures["retained_result"] = accepted_then_stored(searched=True)
    figures["tombstone_bit"] = int(client.memory_usage(f"dsxc:job:{job_id}:done") or 0) / count
    other = jobs.create("0f0e6a4c-54b5-5d2a-9cd1-0d7e1e1e0b7c", "filesystem-connector")
    plain = tasks(other, numbered=False)
    for n, task in enumerate(plain):
        task.id = f"{n + count + 1:032x}"
    keyed = ResultStore(client, retain=count, request_ttl_s=3600)  # retention drops the first job's
    for start in range(0, count, 500):
        keyed.store_many(events(plain[start : start + 500]))
    after_results = used()
    client.delete(*[f"dsxc:req:{t.id}" for t in plain])
    figures["tombstone_key"] = (after_results - used()) / count
    # beside a SQL history: the same, without the verdict, connector and job indexes
    figures["retained_result_beside_sql"] = accepted_then_stored(searched=False)[2]
    client.flushdb()
    return {name: round(value, 1) for name, value in figures.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--redis-url", required=True, help="a scratch database: it is flushed")
    parser.add_argument("--count", type=int, default=20_000)
    args = parser.parse_args(argv)
    client = redis.Redis.from_url(args.redis_url, decode_responses=True)
    print(json.dumps({"bytes_per": bytes_per_item(client, args.count)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
