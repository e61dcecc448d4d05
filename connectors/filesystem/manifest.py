"""The filesystem connector's facts, declared once (``connectors.manifest``)."""

from connectors.manifest import ConnectorManifest

MANIFEST = ConnectorManifest(
    package="filesystem",
    name="filesystem-connector",
    port=8620,
    title="a local or mounted folder",
    sample="folder",
)
