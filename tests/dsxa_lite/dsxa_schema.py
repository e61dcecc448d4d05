"""A strict model of a DSXA answer, as a DSXA client validates it (SPEC §3 plus DSXA's enums).

Every answer of every dsxa_lite route is checked against it: the verdict is one SPEC §3 defines,
``threat_type`` one of DSXA's eight or null, the field names DSXA's.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SpecVerdict(StrEnum):
    BENIGN = "Benign"
    MALICIOUS = "Malicious"
    UNKNOWN = "Unknown"
    UNSUPPORTED = "Unsupported File Type"
    NOT_SCANNED = "Not Scanned"
    SCANNING = "Scanning"
    NON_COMPLIANT = "Non Compliant"


class DsxaThreatType(StrEnum):
    RANSOMWARE = "RANSOMWARE"
    BACKDOOR = "BACKDOOR"
    DROPPER = "DROPPER"
    PUA = "PUA"
    SPYWARE = "SPYWARE"
    VIRUS = "VIRUS"
    WORM = "WORM"
    DUALUSE = "DUALUSE"


class StrictDetails(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)

    event_description: str
    reason: str
    threat_type: DsxaThreatType | None


class StrictFileInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file_type: str
    file_size_in_bytes: int
    file_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    container_hash: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class StrictAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    scan_guid: str = Field(pattern=r"^[0-9a-f]{32}$")
    verdict: SpecVerdict
    verdict_details: StrictDetails
    file_info: StrictFileInfo | None
    scan_duration_in_microseconds: int = Field(ge=0)
    container_files_scanned: int = Field(ge=0)
    container_files_scanned_size: int = Field(ge=0)
    protected_entity: int
    x_custom_metadata: str | None = Field(alias="X-Custom-Metadata")
    engine_version: str


def check_answer(answer: dict[str, Any]) -> StrictAnswer:
    """Validate ``answer`` strictly (raises on a field or value DSXA does not define)."""
    return StrictAnswer.model_validate(answer)
