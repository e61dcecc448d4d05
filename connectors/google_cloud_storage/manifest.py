"""The Google Cloud Storage connector's facts, declared once (``connectors.manifest``)."""

from connectors.manifest import ConnectorManifest

MANIFEST = ConnectorManifest(
    package="google_cloud_storage",
    name="google-cloud-storage-connector",
    port=8630,
    title="a Google Cloud Storage bucket or prefix",
    extras=("cloud",),
    emulator="gcp-storage-emulator",
    emulator_port=9023,
)
