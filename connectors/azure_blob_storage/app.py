"""``uvicorn connectors.azure_blob_storage.app:app --port 8610``"""

from connectors.azure_blob_storage.connector import AzureBlobStorageConnector
from connectors.azure_blob_storage.settings import get_settings
from shared.connector import create_connector_app

app = create_connector_app(AzureBlobStorageConnector(get_settings()))
