"""The OneDrive connector's facts, declared once (``connectors.manifest``)."""

from connectors.manifest import ConnectorManifest

MANIFEST = ConnectorManifest(
    package="onedrive",
    name="onedrive-connector",
    port=8650,
    title="a OneDrive for Business drive or folder (Microsoft Graph)",
    extras=("cloud",),
    sample="drive",
    emulator="fake Graph",
    emulator_port=8655,
)
