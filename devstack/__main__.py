"""``python -m devstack up|down|status``: the entry point of ``make up``, ``make down``, ``make status``."""

from __future__ import annotations

import argparse
import sys

import devstack
from devstack.errors import StackError
from devstack.scan import down, print_status, up
from devstack.settings import StackConfig, run_dir_from_env


def main(argv: list[str] | None = None) -> int:
    """Run one command; 1 (and one line on stderr) for a StackError, 130 on Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m devstack",
        description=devstack.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=("up", "down", "status"))
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            up(StackConfig.from_env())
            return 0
        if args.command == "down":
            down(run_dir_from_env())
            return 0
        return 0 if print_status(run_dir_from_env()) else 1
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: `make status` shows what is still running", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
