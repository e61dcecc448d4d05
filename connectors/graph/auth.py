"""App-only tokens for Graph: msal client credentials (a secret or a certificate), cached and renewed.

msal keeps the token in its cache and asks the login host again only when it is about to expire
(``acquire_token_for_client``); :meth:`GraphTokens.invalidate` drops it after Graph refused it
(401), so the next call fetches a fresh one.
"""

from __future__ import annotations

import threading
from typing import Any

import anyio.to_thread
import msal
import requests
import requests.adapters

from connectors.graph.settings import GraphSettings
from shared.errors import PermanentError, RetryableError

#: msal error codes that mean the credentials themselves are wrong (not a passing outage)
_CREDENTIAL_ERRORS = frozenset({"invalid_client", "unauthorized_client", "invalid_request", "invalid_grant"})


def certificate_credential(path: str, password: str | None) -> dict[str, Any]:
    """msal's certificate credential from a PEM holding the certificate and its private key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    pem = open(path, "rb").read()  # noqa: SIM115 - a small file, read once at start
    try:
        cert = x509.load_pem_x509_certificate(pem)
        key = serialization.load_pem_private_key(pem, password.encode() if password else None)
    except ValueError as exc:
        raise ValueError(
            f"DSXCONNECTOR_SP_CLIENT_CERT_PATH must hold a PEM certificate and its private key: {exc}"
        ) from None
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "private_key": key_pem,
        "thumbprint": cert.fingerprint(hashes.SHA1()).hex(),
        "public_certificate": cert.public_bytes(serialization.Encoding.PEM).decode(),
    }


class _Session(requests.Session):
    """requests, with our CA file on every call: a session's own ``verify`` loses to the
    ``REQUESTS_CA_BUNDLE`` environment variable, a per-call one does not."""

    def __init__(self, ca_bundle: str | None) -> None:
        super().__init__()
        self._verify: str | bool = ca_bundle or True
        self.mount("https://", requests.adapters.HTTPAdapter(max_retries=1))

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        if self._verify is not True:
            kwargs.setdefault("verify", self._verify)
        kwargs.setdefault("timeout", 30)
        return super().request(method, url, *args, **kwargs)  # type: ignore[arg-type]


class GraphTokens:
    """Bearer tokens for ``{graph}/.default``; thread-safe, msal does the caching."""

    def __init__(self, settings: GraphSettings) -> None:
        credential: Any
        if settings.sp_client_cert_path:
            password = settings.sp_client_cert_password
            credential = certificate_credential(
                settings.sp_client_cert_path, password.get_secret_value() if password else None
            )
        else:
            assert settings.sp_client_secret is not None  # the settings require one of the two
            credential = settings.sp_client_secret.get_secret_value()
        self._settings = settings
        self._credential = credential
        self._scopes = [f"{settings.graph_base_url}/.default"]
        self._app: msal.ConfidentialClientApplication | None = None
        self._lock = threading.Lock()

    def _application(self) -> msal.ConfidentialClientApplication:
        # built on first use: msal reads the tenant's OpenID configuration over the network
        if self._app is None:
            s = self._settings
            self._app = msal.ConfidentialClientApplication(
                s.sp_client_id,
                client_credential=self._credential,
                authority=f"{s.graph_login_host}/{s.sp_tenant_id}",
                # a national cloud or the tests' fake is not in Microsoft's instance list
                validate_authority=s.graph_login_host == "https://login.microsoftonline.com",
                instance_discovery=s.graph_login_host == "https://login.microsoftonline.com",
                http_client=_Session(s.graph_ca_bundle),
            )
        return self._app

    def _acquire(self) -> str:
        with self._lock:
            try:
                result = self._application().acquire_token_for_client(scopes=self._scopes)
            except ValueError as exc:  # msal: the tenant's OpenID configuration could not be read
                self._app = None
                raise PermanentError(
                    f"the login host refused the tenant {self._settings.sp_tenant_id!r} ({exc}); check the "
                    "credentials DSXCONNECTOR_SP_TENANT_ID and DSXCONNECTOR_GRAPH_LOGIN_HOST",
                    status_code=403,
                ) from None
            except Exception as exc:  # requests' connection errors and timeouts
                self._app = None
                raise RetryableError(
                    f"login host unreachable: {type(exc).__name__}: {exc}", status_code=503
                ) from None
        token = result.get("access_token") if isinstance(result, dict) else None
        if token:
            return str(token)
        error = str(result.get("error", "")) if isinstance(result, dict) else ""
        described = (
            str(result.get("error_description", "")).splitlines()[0][:300] if isinstance(result, dict) else ""
        )
        if error in _CREDENTIAL_ERRORS:
            raise PermanentError(
                f"Entra refused the credentials ({error}: {described}); check DSXCONNECTOR_SP_CLIENT_ID and "
                "DSXCONNECTOR_SP_CLIENT_SECRET / _CLIENT_CERT_PATH",
                status_code=403,
            )
        raise RetryableError(f"no token from the login host ({error}: {described})", status_code=503)

    async def token(self) -> str:
        """A valid access token (from msal's cache unless it is about to expire)."""
        return await anyio.to_thread.run_sync(self._acquire)

    def invalidate(self) -> None:
        """Forget the cached token (Graph answered 401 to it): the next ``token()`` fetches a new one."""
        with self._lock:
            if self._app is None:
                return
            cache = self._app.token_cache
            for entry in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                cache.remove_at(entry)
