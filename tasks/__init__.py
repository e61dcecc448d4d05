"""invoke tasks (`inv --list`): the local stack, the Makefile's test targets, `inv bench`, and the
deployment tasks.

- :mod:`tasks.dev`: `inv up`/`down`/`status` (the :mod:`devstack` package), `inv test`, `inv lint`,
  `inv bench`, `inv enrollment-token --connector-name NAME`, `inv db-upgrade`.
- :mod:`tasks.release` (docs/deployment.md): `inv release` (bump versions, write the CHANGELOG entry),
  `inv bundle` (versioned tarballs of compose files, env examples, Helm charts and docs into dist/),
  `inv images` (the docker build commands, version labels from each version.py).
- :mod:`tasks.cluster`: `inv charts` (render and lint the Helm charts offline), `inv compose-check`
  (docker-compose config of every compose file), `inv secrets`, `inv certs` (a development CA and
  server certificates, :mod:`devstack.certs`).

invoke collects every task found in this module's namespace, hence the re-exports.
"""

from __future__ import annotations

import sys
from pathlib import Path

# invoke imports this package from its folder without putting the repository on sys.path
if str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devstack.certs import CERT_NAMES, DEFAULT_SANS, CertError, make_certs
from tasks.cluster import *  # noqa: F403
from tasks.cluster import _compose_env
from tasks.common import *  # noqa: F403
from tasks.dev import *  # noqa: F403
from tasks.fault_runs import faults
from tasks.release import *  # noqa: F403

__all__ = ["CERT_NAMES", "DEFAULT_SANS", "CertError", "_compose_env", "faults", "make_certs"]
