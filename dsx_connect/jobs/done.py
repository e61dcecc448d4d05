"""Tombstones of finished items as one bit each: what keeps dedupe exact without growing Redis.

A stored (or skipped) request must stay a duplicate after the results retention dropped its
result: a batch the connector resubmits, or a task redelivered, must count nothing twice. A
tombstone key per request cost about 120 bytes for days (120 MB per million files). Items of a
full scan carry ``job_item_id``, their 1-based position in the job, so the job keeps one bitmap
(``keys.job_done``) with a bit set per finished item: 125 KB per million items, expiring with the
job. Requests without a numeric position (change events, 1.x connectors that send other ids)
keep a tombstone key (``keys.request_state``) for ``DSXCONNECT_RESULTS_DB__REQUEST_STATE_TTL_S``.

A bit is set only where it grows the bitmap by :data:`DONE_GROWTH_BYTES` at most
(``done_fits.lua``): a position is what the connector sends, and one far past the items finished so
far would allocate up to 8 MiB in one SETBIT (a connector naming thousands of jobs, each with an
item at position 67,108,864, would fill Redis). An item too far ahead keeps a tombstone key instead,
as an item without a position does (for the request-state TTL), and its job hash counts it in
``done_spilled``, so that the scan step's triage, which reads the bitmap alone, also looks for the
keys of the job's items whose bits read 0. Every reader takes an item as finished when its bit is
set or its tombstone key says so: never counted twice, wherever its mark is. A full scan's items
finish roughly in the order of their positions, so the bitmap grows with them and keeps nearly all.
"""

from __future__ import annotations

# The highest position kept in a bitmap: a job's bitmap never exceeds 8 MiB, whatever position a
# connector sends; an item past it falls back to a tombstone key.
MAX_DONE_BIT = 1 << 26

#: how far past its end (in bytes, 8 positions each) one finished item may grow a job's bitmap
DONE_GROWTH_BYTES = 4096


def done_bit(job_item_id: str | None) -> int:
    """The item's bit in its job's bitmap, or 0 when it has none (it keeps a tombstone key).

    Only a position written as a number is (``"7"``, never ``"07"``): two ids one bit would make
    the second item look finished when the first is, so it would never be scanned and its job never
    complete."""
    if (
        not job_item_id
        or not (job_item_id.isascii() and job_item_id.isdigit())
        or len(job_item_id) > 9
        or job_item_id[0] == "0"
    ):
        return 0
    position = int(job_item_id)
    return position if 0 < position <= MAX_DONE_BIT else 0
