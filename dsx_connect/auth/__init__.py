"""Security of the core (SPEC §8): who may call what, and the credentials that say so.

- :mod:`settings`: ``DSXCONNECT_AUTH__*``.
- :mod:`middleware`: the thin layer that finds the caller before any route code runs (DSX-HMAC
  over the raw body, API keys, sessions) and sets the :mod:`principal`.
- :mod:`access`: the access rules each route declares as a dependency; deny by default.
- :mod:`credentials`: connector identities and key pairs (derived, never stored), rotation, revocation.
- :mod:`enrollment`: fleet-wide and scoped enrollment tokens; :mod:`ratelimit`: failure counters.
- :mod:`operators`: API keys and dashboard sessions.
- :mod:`signing`: the workers' signers for calls to connectors; :mod:`deps`: the API's.
- :mod:`urls`: which connector URLs a registration may name (SSRF).
- :mod:`api`: ``/auth/login``, ``/auth/logout``, ``/auth/session``, ``/auth/connectors/...``,
  ``/auth/enrollment-tokens``; :mod:`cli`: the same tokens from a shell.
- :mod:`install`: wires the auth layer, the default-deny gate, the body limit and the routes.
"""
