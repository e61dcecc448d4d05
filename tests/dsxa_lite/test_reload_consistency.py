"""A reload never mixes rule sets inside one scan: each answer's identity matches its verdict."""

from __future__ import annotations

import shutil
from pathlib import Path

import anyio
import pytest

from dsxa_lite.body import ReceivedBody
from dsxa_lite.service import ScanService
from dsxa_lite.settings import DEFAULT_RULES_DIR, DsxaLiteSettings

from . import archive_samples as build
from .samples import filler, sha256

pytestmark = pytest.mark.unit

TOGGLE = b"TOGGLED-RULE-MARKER-0815"
RULE = 'rule Toggled { meta: threat_type = "PUA" strings: $a = "TOGGLED-RULE-MARKER-0815" condition: $a }'


def test_scans_during_reloads_use_one_rule_set_each(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, rules)
    service = ScanService(DsxaLiteSettings(rules_dir=rules))
    # many members, the marked one last: a walk takes long enough for reloads to land during it
    members = {f"m{n}.txt": filler(200, seed=n) for n in range(1500)}
    members["zz-last.txt"] = filler(100) + TOGGLE
    data = build.zip_of(members)
    seen: list[tuple[str, str]] = []
    identities: dict[bool, str] = {False: service.ruleset.identity}

    async def scans() -> None:
        for _ in range(12):
            body = ReceivedBody(sha256(data), len(data), data[:4096], data=data)
            outcome = await service.ascan(body)
            seen.append((outcome.identity, outcome.verdict))

    async def reloads() -> None:
        present = False
        for _ in range(12):
            present = not present
            extra = rules / "toggle.yar"
            if present:
                extra.write_text(RULE)
            else:
                extra.unlink()
            result = await service.reload("test")
            assert result.ok, result.error
            identities[present] = result.identity
            await anyio.sleep(0.01)

    async def main() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(scans)
            group.start_soon(reloads)

    anyio.run(main)
    assert identities[True] != identities[False]
    for identity, verdict in seen:
        assert identity in identities.values()
        assert (verdict == "Malicious") == (identity == identities[True]), (identity, verdict)
    service.close()
