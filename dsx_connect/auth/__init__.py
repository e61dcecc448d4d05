"""Security of the core (SPEC §8): who may call what, and the credentials that say so.

- :mod:`settings`: ``DSXCONNECT_AUTH__*``.
- :mod:`policy`: the access rule of every route (public, limited, enroll, connector, operator).
- :mod:`middleware`: the gate enforcing it before any route code runs (DSX-HMAC, API keys, sessions).
- :mod:`credentials`: connector key pairs (derived, never stored), enrollment, rotation, revocation.
- :mod:`operators`: API keys and dashboard sessions.
- :mod:`signing`: the workers' signers for calls to connectors; :mod:`deps`: the API's.
- :mod:`urls`: which connector URLs a registration may name (SSRF).
- :mod:`api`: ``/auth/login``, ``/auth/logout``, ``/auth/session``, ``/auth/connectors/...``.
- :mod:`install`: wires the gate, the body limit and the routes into the app.
"""
