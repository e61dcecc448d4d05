"""``uvicorn connectors.filesystem.app:app --port 8620``"""

from connectors.filesystem.connector import FilesystemConnector
from connectors.filesystem.settings import get_settings
from shared.connector import create_connector_app

app = create_connector_app(FilesystemConnector(get_settings()))
