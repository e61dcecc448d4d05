"""The history's tables. Migrations (``migrations/versions``) create them; this module describes them
for queries. Times are integer microseconds since the epoch (UTC): one portable, sortable type for
SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Integer, MetaData, String, Table, Text

metadata = MetaData()

#: ``BIGINT`` on PostgreSQL; SQLite's ``INTEGER PRIMARY KEY`` is its row id (autoincrementing).
Id = BigInteger().with_variant(Integer(), "sqlite")
#: locations compare byte-wise on PostgreSQL too, so a prefix search is an index range.
Location = Text().with_variant(Text(collation="C"), "postgresql")
#: the location index covers this many characters (migration 0005): at most 2,400 bytes in UTF-8,
#: under PostgreSQL's B-tree entry limit (about 2,704 bytes), which refused longer locations' rows
LOCATION_HEAD = 600

scan_results = Table(
    "scan_results",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("scan_request_id", String(128), nullable=False, unique=True),
    Column("ts_us", BigInteger, nullable=False),
    Column("job_id", String(128), nullable=False),
    Column("connector_uuid", String(64), nullable=False),
    Column("connector_name", String(200), nullable=False),
    Column("location", Location, nullable=False),
    Column("verdict", String(32), nullable=False),
    Column("threat_name", String(256)),
    Column("sha256", String(64)),
    Column("size_bytes", BigInteger, nullable=False),
    Column("action", String(16), nullable=False),  # the action applied, '' when none
    Column("action_status", String(16), nullable=False),
    Column("failed", Boolean, nullable=False),  # the scan failed (Not Scanned with an error)
    Column("event", Text, nullable=False),  # the SPEC §7 event, compact JSON
)

#: the unchanged-object index (dsx_connect/cache): location -> what was scanned there last
scan_cache = Table(
    "scan_cache",
    metadata,
    Column("connector_uuid", String(64), primary_key=True),
    Column("location", Location, primary_key=True),
    Column("version", String(256), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("identity", Text, nullable=False),
    Column("verdict", Text, nullable=False),  # the scanner's answer, compact JSON
    Column("ts_us", BigInteger, nullable=False),
)
