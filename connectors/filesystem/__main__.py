"""``python -m connectors.filesystem [serve|list|estimate|read LOCATION]`` (see ``shared.connector.cli``)."""

from connectors.filesystem.connector import FilesystemConnector
from connectors.filesystem.settings import get_settings
from shared.connector.cli import main

raise SystemExit(main(lambda: FilesystemConnector(get_settings()), "connectors.filesystem.app:app"))
