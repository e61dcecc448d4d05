"""Bomb limits of one archive walk and the running budget that enforces them."""

from __future__ import annotations

import time
from dataclasses import dataclass

from shared.models import Verdict

ARCHIVE_BOMB = "Archive Bomb"


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """Limits of one archive walk (settings ``DSXA_LITE_ARCHIVE_*``)."""

    max_depth: int = 5
    max_members: int = 100_000
    max_total_bytes: int = 4 * 1024**3
    max_ratio: int = 100
    ratio_floor_bytes: int = 32 * 1024**2
    time_limit_s: float = 60.0


class LimitReached(Exception):
    """A limit ended the walk: ``verdict`` and ``reason`` are the answer's."""

    def __init__(self, verdict: Verdict, reason: str) -> None:
        super().__init__(reason)
        self.verdict = verdict
        self.reason = reason


class StopWalk(Exception):
    """A Malicious member ends the walk."""


class Budget:
    """Counts members and unpacked bytes of one walk against its :class:`ArchiveLimits`."""

    def __init__(self, limits: ArchiveLimits, container_size: int) -> None:
        self.limits = limits
        self.container_size = max(container_size, 1)
        self.members = 0
        self.unpacked = 0
        self.deadline = time.monotonic() + limits.time_limit_s

    def bomb(self, what: str, path: str) -> LimitReached:
        """The refusal of an archive bomb: ``what`` it did, at ``path``."""
        return LimitReached(Verdict.NON_COMPLIANT, f"{ARCHIVE_BOMB}: {what} (at {path})")

    def check_time(self, path: str) -> None:
        """Not Scanned once the walk ran past its time limit."""
        if time.monotonic() > self.deadline:
            reason = f"Archive scan time limit of {self.limits.time_limit_s:g} s reached (at {path})"
            raise LimitReached(Verdict.NOT_SCANNED, reason)

    def members_left(self) -> int:
        """How many more members the walk may take."""
        return max(self.limits.max_members - self.members, 0)

    def too_many_members(self, path: str) -> LimitReached:
        """The member limit's refusal, for an archive listing more members than are left (raised
        before its listing is parsed), naming the first member past the limit."""
        return self.bomb(f"more than {self.limits.max_members} members", path)

    def member(self, path: str, declared_size: int | None) -> None:
        """Count one more member; refuse it up front when its declared size cannot fit."""
        self.members += 1
        if self.members > self.limits.max_members:
            raise self.too_many_members(path)
        if declared_size is not None and self.unpacked + declared_size > self.limits.max_total_bytes:
            raise self.bomb(f"more than {self.limits.max_total_bytes} bytes unpacked", path)
        self.check_time(path)

    def add(self, path: str, size: int) -> None:
        """Count ``size`` more unpacked bytes."""
        self.unpacked += size
        limits = self.limits
        if self.unpacked > limits.max_total_bytes:
            raise self.bomb(f"more than {limits.max_total_bytes} bytes unpacked", path)
        if (
            self.unpacked > limits.ratio_floor_bytes
            and self.unpacked > limits.max_ratio * self.container_size
        ):
            raise self.bomb(f"expansion ratio over {limits.max_ratio}", path)
        self.check_time(path)
