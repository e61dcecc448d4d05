"""The Microsoft Graph drive layer the SharePoint and OneDrive connectors share (not a connector itself)."""
