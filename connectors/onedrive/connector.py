"""The OneDrive connector: a Graph drive connector that finds its drive by user."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from connectors.graph.drive import GraphDriveConnector
from connectors.onedrive.manifest import MANIFEST
from connectors.onedrive.settings import OneDriveSettings
from connectors.onedrive.version import __version__
from shared.errors import NotFoundError


class OneDriveConnector(GraphDriveConnector[OneDriveSettings]):
    """Scans a user's OneDrive for Business, or a folder of it (see ``connectors.graph.drive``)."""

    version = __version__
    manifest = MANIFEST

    async def find_drive(self) -> dict[str, Any]:
        user = (self.settings.od_user or "").strip()
        try:
            return await self.client.json(
                "GET", f"/users/{quote(user, safe='@')}/drive", params={"$select": "id,name"}
            )
        except NotFoundError:
            raise NotFoundError(
                f"user {user!r} has no OneDrive, or does not exist (DSXCONNECTOR_OD_USER)"
            ) from None
