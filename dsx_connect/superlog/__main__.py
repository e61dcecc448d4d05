"""``python -m dsx_connect.superlog``: run the feed's forwarder as its own process (until SIGTERM/SIGINT).

For deployments that keep it out of the workers (``DSXCONNECT_SUPERLOG__FORWARDER=off`` there).
"""

from __future__ import annotations

import signal
import sys
import threading

from dsx_connect.redis_client import get_redis
from dsx_connect.settings import get_settings
from dsx_connect.superlog.forwarder import ForwarderGroup
from shared.logging import configure_logging


def main() -> int:
    settings = get_settings()
    configure_logging("dsx_connect.superlog", settings.log_level)
    if not settings.superlog.active:
        print("the feed is off: set DSXCONNECT_SUPERLOG__ENABLED=true and __DESTINATIONS", file=sys.stderr)
        return 2
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    group = ForwarderGroup(get_redis(), settings).start()
    done.wait()
    group.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
