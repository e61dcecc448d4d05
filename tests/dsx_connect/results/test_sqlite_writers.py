"""SQLite writers queue on a lock file beside the database (``db.engine.begin_write``) instead of
polling SQLite's busy handler; other databases begin as usual."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from dsx_connect.db.engine import begin_write, make_engine

pytestmark = pytest.mark.unit


def _table(url: str) -> None:
    with begin_write(make_engine(url)) as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))


def test_a_writer_waits_for_the_lock_file_and_commits_once_it_is_free(tmp_path: Path) -> None:
    database = tmp_path / "history.db"
    url = f"sqlite:///{database}"
    _table(url)
    # another process's writer, as flock sees it: a second open file holding the lock
    holder = os.open(f"{database}.writer-lock", os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)
    engine = make_engine(url)

    def write() -> None:
        with begin_write(engine) as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))

    writer = threading.Thread(target=write)
    writer.start()
    writer.join(timeout=0.3)
    try:
        assert writer.is_alive()  # queued behind the holder, not polling past it
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 0
    finally:
        fcntl.flock(holder, fcntl.LOCK_UN)
        os.close(holder)
    writer.join(timeout=30)
    assert not writer.is_alive()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1


def test_threads_of_one_process_take_turns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    _table(url)
    engine = make_engine(url)
    inside, overlaps = 0, 0
    guard = threading.Lock()

    def write(n: int) -> None:
        nonlocal inside, overlaps
        with begin_write(engine) as conn:
            with guard:
                inside += 1
                overlaps += inside > 1
            conn.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
            with guard:
                inside -= 1

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert overlaps == 0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 8


def test_a_failed_write_releases_the_lock_and_rolls_back(tmp_path: Path) -> None:
    database = tmp_path / "history.db"
    url = f"sqlite:///{database}"
    _table(url)
    engine = make_engine(url)
    with pytest.raises(RuntimeError), begin_write(engine) as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        raise RuntimeError("the batch failed half way")
    probe = os.open(f"{database}.writer-lock", os.O_RDWR)
    try:
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again: raises if still held
    finally:
        os.close(probe)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 0


def test_in_memory_sqlite_and_other_databases_use_no_lock_file(tmp_path: Path) -> None:
    engine = create_engine("sqlite://")
    with begin_write(engine) as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
    assert list(tmp_path.iterdir()) == []


def test_every_sqlite_connection_uses_wal_and_checkpoints_rarely_with_a_bounded_wal(tmp_path: Path) -> None:
    """WAL (readers never block the writer), and checkpoints every WAL_CHECKPOINT_PAGES pages instead
    of SQLite's 1,000: the random-key indexes dirty a page per row, which the default copied back
    at nearly every commit; a WAL that outgrew the bound is cut back."""
    from dsx_connect.db.engine import WAL_CHECKPOINT_PAGES, WAL_SIZE_LIMIT_BYTES

    engine = make_engine(f"sqlite:///{tmp_path / 'history.db'}")
    with engine.connect() as conn:
        read = {name: conn.execute(text(f"PRAGMA {name}")).scalar() for name in
                ("journal_mode", "synchronous", "wal_autocheckpoint", "journal_size_limit")}  # fmt: skip
    assert read == {
        "journal_mode": "wal",
        "synchronous": 1,  # NORMAL
        "wal_autocheckpoint": WAL_CHECKPOINT_PAGES,
        "journal_size_limit": WAL_SIZE_LIMIT_BYTES,
    }
    assert WAL_CHECKPOINT_PAGES * 4096 <= WAL_SIZE_LIMIT_BYTES
