"""Settings of the OneDrive connector: the Graph ones (``connectors.graph.settings``) and whose drive.

| variable | default | meaning |
| --- | --- | --- |
| ``OD_USER`` | – | the drive's owner: a user principal name (``ana@contoso.com``) or object id, or: |
| ``GRAPH_DRIVE_ID`` | – | the drive's id |
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import model_validator

from connectors.graph.settings import GraphSettings
from connectors.onedrive.manifest import MANIFEST
from shared.settings import load_settings


class OneDriveSettings(GraphSettings):
    """A OneDrive for Business drive: by its user, or by drive id."""

    name: str = MANIFEST.name
    port: int = MANIFEST.port

    od_user: str | None = None

    @model_validator(mode="after")
    def _drive(self) -> OneDriveSettings:
        if not self.graph_drive_id and not (self.od_user or "").strip():
            raise ValueError(
                "name the drive: DSXCONNECTOR_OD_USER (a UPN or user id) or DSXCONNECTOR_GRAPH_DRIVE_ID"
            )
        return self


@lru_cache
def get_settings() -> OneDriveSettings:
    """The process's settings, read once from the environment (exits naming a bad variable)."""
    return load_settings(OneDriveSettings)
