"""``uvicorn connectors.onedrive.app:app --port <its manifest's port>``"""

from connectors.onedrive.connector import OneDriveConnector
from connectors.onedrive.settings import get_settings
from shared.connector import create_connector_app

app = create_connector_app(OneDriveConnector(get_settings()))
