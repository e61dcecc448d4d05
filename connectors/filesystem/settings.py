"""Settings of the filesystem connector (``DSXCONNECTOR_*``; the shared ones are in ``shared.connector.settings``).

Own settings: ``MONITOR_FORCE_POLLING`` and ``MONITOR_POLL_INTERVAL_MS`` (for SMB/CIFS or NFS
mounts that send no inotify events; 1.x names), ``MONITOR_DEBOUNCE_MS`` (how long changes are
grouped before they are submitted), ``READ_IN_THREAD`` (read files in a worker thread instead of
the event loop: for network mounts that may stall).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import ClassVar

from pydantic import Field, ValidationInfo, field_validator

from connectors.filesystem.manifest import MANIFEST
from shared.connector.settings import ConnectorSettings
from shared.models import ItemActionType
from shared.settings import load_settings


class FilesystemSettings(ConnectorSettings):
    """``ASSET`` must be an existing directory; ``ITEM_ACTION_MOVE_METAINFO`` is the quarantine
    folder (a relative one lives under the asset and is skipped by scans and the watcher)."""

    supported_actions: ClassVar[frozenset[ItemActionType]] = frozenset(
        {ItemActionType.NOTHING, ItemActionType.DELETE, ItemActionType.MOVE, ItemActionType.MOVE_TAG}
    )

    name: str = MANIFEST.name
    port: int = MANIFEST.port
    monitor_force_polling: bool = False
    monitor_poll_interval_ms: int = Field(default=1000, ge=50)
    monitor_debounce_ms: int = Field(default=500, ge=10, le=60_000)
    read_in_thread: bool = False

    @field_validator("asset")
    @classmethod
    def _asset_is_directory(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name the directory to scan")
        path = Path(value.strip()).expanduser()
        if not path.is_dir():
            raise ValueError(f"{value!r} is not an existing directory")
        return str(path.resolve())

    @field_validator("item_action_move_metainfo")
    @classmethod
    def _quarantine_outside_root(cls, value: str, info: ValidationInfo) -> str:
        asset = info.data.get("asset")
        if value.strip() and asset:
            folder = (Path(asset) / Path(value.strip()).expanduser()).resolve()
            if folder == Path(asset) or folder in Path(asset).parents:
                raise ValueError("the quarantine folder cannot be the asset or contain it")
        return value.strip()


@lru_cache
def get_settings() -> FilesystemSettings:
    """The process's settings, read once from the environment (exits naming a bad variable)."""
    return load_settings(FilesystemSettings)
