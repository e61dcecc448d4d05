#!/usr/bin/env python3
"""Compatibility shim: the local stack lives in the ``devstack`` package (``python -m devstack up``).

``from scripts import stack`` keeps working for tests written against the old module: every public
name of the package's modules is re-exported here. New code imports ``devstack.*`` directly.
"""

from __future__ import annotations

import sys
from pathlib import Path

if str(Path(__file__).resolve().parents[1]) not in sys.path:  # run as a file: make devstack importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devstack.__main__ import main
from devstack.auth import *  # noqa: F403
from devstack.emulators import *  # noqa: F403
from devstack.errors import *  # noqa: F403
from devstack.graph import *  # noqa: F403
from devstack.probes import *  # noqa: F403
from devstack.procs import *  # noqa: F403
from devstack.procs import _gone  # noqa: F401
from devstack.samples import *  # noqa: F403
from devstack.scan import *  # noqa: F403
from devstack.settings import *  # noqa: F403

if __name__ == "__main__":
    sys.exit(main())
