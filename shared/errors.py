"""The error family every boundary maps into.

    DsxError
    ├── PermanentError        do not retry: bad input, bad credentials, missing item (4xx)
    │   ├── NotFoundError     the item or resource does not exist (404)
    │   └── OutsideAssetError a location escapes the connector's asset
    └── RetryableError        retry with backoff: 5xx, timeouts, connection errors,
        │                     a scanner that is still initialising
        ├── ScannerUnavailable    the scanner hop failed (feeds the scanner's circuit breaker)
        └── ConnectorUnavailable  the connector hop failed

Workers decide whether to retry from the class alone, without knowing which library raised.
"""


class DsxError(Exception):
    """Base of every error raised across a service boundary."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


class PermanentError(DsxError):
    """Retrying cannot help."""


class NotFoundError(PermanentError):
    """The item or resource does not exist."""


class OutsideAssetError(PermanentError):
    """A location escapes the connector's configured asset."""


class RetryableError(DsxError):
    """A transient failure: retry with capped exponential backoff."""


class ScannerUnavailable(RetryableError):
    """The scanner did not answer, or answered 5xx / not ready."""


class ConnectorUnavailable(RetryableError):
    """The connector did not answer, or answered 5xx."""
