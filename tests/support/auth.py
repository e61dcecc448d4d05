"""The secrets every service a test starts runs with (auth on, as in production), and helpers to use them.

``tests.support.procs.base_env`` hands these to each process, so a test that starts a core and a
connector gets enrollment, DSX-HMAC both ways and operator keys without asking; clients of the core
send :data:`OPERATOR_HEADERS`.
"""

from __future__ import annotations

import httpx

from shared.hmac_auth import DsxHmacAuth, Signer

ENROLLMENT_TOKEN = "test-enrollment-token-0123456789"
OPERATOR_KEY = "test-operator-api-key-0123456789"
SERVER_KEY = "test-server-key-0123456789abcdef"

#: headers of an operator's client (and of a test registering connectors directly)
OPERATOR_HEADERS = {"X-API-Key": OPERATOR_KEY, "X-Enrollment-Token": ENROLLMENT_TOKEN}

AUTH_ENV = {
    "DSXCONNECT_AUTH__ENABLED": "true",
    "DSXCONNECT_AUTH__ENROLLMENT_TOKENS": ENROLLMENT_TOKEN,
    "DSXCONNECT_AUTH__API_KEYS": OPERATOR_KEY,
    "DSXCONNECT_AUTH__SERVER_KEY": SERVER_KEY,
    "DSXCONNECTOR_ENROLLMENT_TOKEN": ENROLLMENT_TOKEN,
    # Test connectors restart with the fleet token and no pair (it lives in memory): re-registering an
    # existing uuid that way is the migration setting's 1.x behaviour. tests/security turns it off and
    # shows the rule it relaxes (a fleet token gets 409 on an existing uuid).
    "DSXCONNECT_AUTH__ALLOW_FLEET_REENROLL": "true",
}

#: a pre-provisioned DSX-HMAC pair for in-process connector tests (``DSXCONNECTOR_AUTH__HMAC_*``)
CONNECTOR_KEY_ID = "dsxk-test-connector-key"
CONNECTOR_SECRET = "test-connector-secret-0123456789"
CONNECTOR_AUTH = {"hmac_key_id": CONNECTOR_KEY_ID, "hmac_secret": CONNECTOR_SECRET}


def core_signer() -> httpx.Auth:
    """Signs requests to a connector provisioned with :data:`CONNECTOR_AUTH`, as the core would."""
    return DsxHmacAuth(Signer(CONNECTOR_KEY_ID, CONNECTOR_SECRET))


def connector_signer(registration: dict[str, object]) -> httpx.Auth:
    """Signs requests to the core with the pair a registration answer carried, as the connector would."""
    return DsxHmacAuth(Signer(str(registration["hmac_key_id"]), str(registration["hmac_secret"])))
