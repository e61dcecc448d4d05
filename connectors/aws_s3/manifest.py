"""The AWS S3 connector's facts, declared once (``connectors.manifest``)."""

from connectors.manifest import ConnectorManifest

MANIFEST = ConnectorManifest(
    package="aws_s3",
    name="aws-s3-connector",
    port=8600,
    title="an S3 bucket or prefix (S3-compatible stores too)",
    extras=("cloud",),
    emulator="moto (S3)",
    emulator_port=4566,
)
