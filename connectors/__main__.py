"""``python -m connectors [serve|list|estimate|read]``: the connector named by ``DSX_CONNECTOR`` (a package).

The one connector image (``connectors/Dockerfile``) sets ``DSX_CONNECTOR`` from its build argument.
"""

import os
import runpy
import sys

from connectors.manifest import PACKAGES

package = os.environ.get("DSX_CONNECTOR", "").strip()
if package not in PACKAGES:
    sys.exit(f"DSX_CONNECTOR={package!r} is not one of {', '.join(PACKAGES)}")
runpy.run_module(f"connectors.{package}", run_name="__main__", alter_sys=True)
