"""``uvicorn connectors.aws_s3.app:app --port 8600``"""

from connectors.aws_s3.connector import AwsS3Connector
from connectors.aws_s3.settings import get_settings
from shared.connector import create_connector_app

app = create_connector_app(AwsS3Connector(get_settings()))
