"""The Azure Blob Storage connector: scans a container (or a prefix of it) (routes under ``/azure-blob-storage-connector``)."""
