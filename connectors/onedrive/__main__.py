"""``python -m connectors.onedrive [serve|list|estimate|read LOCATION]`` (see ``shared.connector.cli``)."""

from connectors.onedrive.connector import OneDriveConnector
from connectors.onedrive.settings import get_settings
from shared.connector.cli import main

raise SystemExit(main(lambda: OneDriveConnector(get_settings()), "connectors.onedrive.app:app"))
