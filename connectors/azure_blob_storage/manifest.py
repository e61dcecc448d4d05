"""The Azure Blob Storage connector's facts, declared once (``connectors.manifest``)."""

from connectors.manifest import ConnectorManifest

MANIFEST = ConnectorManifest(
    package="azure_blob_storage",
    name="azure-blob-storage-connector",
    port=8610,
    title="an Azure Blob Storage container or prefix",
    extras=("cloud",),
    emulator="Azurite",
    emulator_port=10000,
)
