"""``python -m connectors.sharepoint [serve|list|estimate|read LOCATION]`` (see ``shared.connector.cli``)."""

from connectors.sharepoint.connector import SharePointConnector
from connectors.sharepoint.settings import get_settings
from shared.connector.cli import main

raise SystemExit(main(lambda: SharePointConnector(get_settings()), "connectors.sharepoint.app:app"))
