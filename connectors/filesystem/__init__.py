"""The filesystem connector: scans a local or mounted directory tree (routes under ``/filesystem-connector``)."""
