"""``uvicorn connectors.sharepoint.app:app --port <its manifest's port>``"""

from connectors.sharepoint.connector import SharePointConnector
from connectors.sharepoint.settings import get_settings
from shared.connector import create_connector_app

app = create_connector_app(SharePointConnector(get_settings()))
