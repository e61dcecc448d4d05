"""The SharePoint connector: a Graph drive connector that finds its drive by site and library."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from connectors.graph.drive import GraphDriveConnector
from connectors.sharepoint.manifest import MANIFEST
from connectors.sharepoint.settings import SharePointSettings
from connectors.sharepoint.version import __version__
from shared.errors import NotFoundError


class SharePointConnector(GraphDriveConnector[SharePointSettings]):
    """Scans a SharePoint document library, or a folder of it (see ``connectors.graph.drive``)."""

    version = __version__
    manifest = MANIFEST

    async def find_drive(self) -> dict[str, Any]:
        s = self.settings
        site_path = "/" + (s.sp_site_path or "").strip("/")
        address = (
            f"/sites/{s.sp_hostname}:{quote(site_path)}" if site_path != "/" else f"/sites/{s.sp_hostname}"
        )
        try:
            site = await self.client.json("GET", address, params={"$select": "id,webUrl"})
        except NotFoundError:
            raise NotFoundError(
                f"site {s.sp_hostname}{site_path} does not exist (DSXCONNECTOR_SP_SITE_*)"
            ) from None
        site_id = quote(str(site["id"]), safe="")
        if not s.sp_drive_name:
            return await self.client.json("GET", f"/sites/{site_id}/drive", params={"$select": "id,name"})
        url = f"/sites/{site_id}/drives"
        params: dict[str, Any] | None = {"$select": "id,name,webUrl"}
        while url:
            page = await self.client.json("GET", url, params=params)
            for drive in page.get("value") or ():
                library = str(drive.get("webUrl", "")).rstrip("/").rsplit("/", 1)[-1]
                if s.sp_drive_name in (drive.get("name"), library):
                    return dict(drive)
            url, params = str(page.get("@odata.nextLink") or ""), None
        raise NotFoundError(
            f"library {s.sp_drive_name!r} does not exist in site {site_path} (DSXCONNECTOR_SP_DRIVE_NAME)"
        )
