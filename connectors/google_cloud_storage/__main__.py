"""``python -m connectors.google_cloud_storage [serve|list|estimate|read LOCATION]`` (see ``shared.connector.cli``)."""

from connectors.google_cloud_storage.connector import GoogleCloudStorageConnector
from connectors.google_cloud_storage.settings import get_settings
from shared.connector.cli import main

raise SystemExit(
    main(lambda: GoogleCloudStorageConnector(get_settings()), "connectors.google_cloud_storage.app:app")
)
