"""Settings of the SharePoint connector: the Graph ones (``connectors.graph.settings``) and where the library is.

| variable | default | meaning |
| --- | --- | --- |
| ``SP_SITE_URL`` | – | the site, e.g. ``https://contoso.sharepoint.com/sites/Finance``, or: |
| ``SP_HOSTNAME`` + ``SP_SITE_PATH`` (1.x names) | – | ``contoso.sharepoint.com`` and ``/sites/Finance`` |
| ``SP_DRIVE_NAME`` (1.x) | the site's default library | the document library, by name (``Documents``, ``Contracts``) |
| ``GRAPH_DRIVE_ID`` | – | the library's drive id instead of all the above |
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import unquote, urlsplit

from pydantic import model_validator

from connectors.graph.settings import GraphSettings
from connectors.sharepoint.manifest import MANIFEST
from shared.settings import load_settings


class SharePointSettings(GraphSettings):
    """A SharePoint document library: by site (URL, or hostname and path) and library name, or by drive id."""

    name: str = MANIFEST.name
    port: int = MANIFEST.port

    sp_site_url: str | None = None
    sp_hostname: str | None = None
    sp_site_path: str | None = None
    sp_drive_name: str | None = None

    @model_validator(mode="after")
    def _site(self) -> SharePointSettings:
        if self.sp_site_url:
            parts = urlsplit(self.sp_site_url.strip())
            if parts.scheme != "https" or not parts.hostname:
                raise ValueError(
                    "DSXCONNECTOR_SP_SITE_URL must be https://<tenant>.sharepoint.com/sites/<site>"
                )
            self.sp_hostname, self.sp_site_path = parts.hostname, unquote(parts.path).rstrip("/")
        if self.sp_hostname:
            self.sp_hostname = self.sp_hostname.strip().removeprefix("https://").strip("/")
        if not self.graph_drive_id and not self.sp_hostname:
            raise ValueError(
                "name the library: DSXCONNECTOR_SP_SITE_URL, or DSXCONNECTOR_SP_HOSTNAME and "
                "DSXCONNECTOR_SP_SITE_PATH, or DSXCONNECTOR_GRAPH_DRIVE_ID"
            )
        return self


@lru_cache
def get_settings() -> SharePointSettings:
    """The process's settings, read once from the environment (exits naming a bad variable)."""
    return load_settings(SharePointSettings)
