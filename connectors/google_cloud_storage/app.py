"""``uvicorn connectors.google_cloud_storage.app:app --port 8630``"""

from connectors.google_cloud_storage.connector import GoogleCloudStorageConnector
from connectors.google_cloud_storage.settings import get_settings
from shared.connector import create_connector_app

app = create_connector_app(GoogleCloudStorageConnector(get_settings()))
