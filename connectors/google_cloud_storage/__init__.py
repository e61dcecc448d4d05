"""The Google Cloud Storage connector: scans a bucket (or a prefix of it) (routes under ``/google-cloud-storage-connector``)."""
