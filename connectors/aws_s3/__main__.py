"""``python -m connectors.aws_s3 [serve|list|estimate|read LOCATION]`` (see ``shared.connector.cli``)."""

from connectors.aws_s3.connector import AwsS3Connector
from connectors.aws_s3.settings import get_settings
from shared.connector.cli import main

raise SystemExit(main(lambda: AwsS3Connector(get_settings()), "connectors.aws_s3.app:app"))
