"""The AWS S3 connector: scans a bucket (or a prefix of it) on S3 or an S3-compatible store (routes under ``/aws-s3-connector``)."""
