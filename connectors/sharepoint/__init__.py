"""The SharePoint connector: scans a document library (or a folder of it) through Microsoft Graph (routes under ``/sharepoint-connector``)."""
