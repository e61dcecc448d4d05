"""The OneDrive connector: scans a OneDrive for Business drive (or a folder of it) through Microsoft Graph (routes under ``/onedrive-connector``)."""
