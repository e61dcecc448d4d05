"""The SharePoint connector's facts, declared once (``connectors.manifest``)."""

from connectors.manifest import ConnectorManifest

MANIFEST = ConnectorManifest(
    package="sharepoint",
    name="sharepoint-connector",
    port=8640,
    title="a SharePoint document library or folder (Microsoft Graph)",
    extras=("cloud",),
    sample="drive",
    emulator="fake Graph",
    emulator_port=8645,
)
