"""``python -m connectors.azure_blob_storage [serve|list|estimate|read LOCATION]`` (see ``shared.connector.cli``)."""

from connectors.azure_blob_storage.connector import AzureBlobStorageConnector
from connectors.azure_blob_storage.settings import get_settings
from shared.connector.cli import main

raise SystemExit(
    main(lambda: AzureBlobStorageConnector(get_settings()), "connectors.azure_blob_storage.app:app")
)
