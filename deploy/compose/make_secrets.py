#!/usr/bin/env python3
"""Fill the secrets of a dsx-connect core env file for Docker Compose (standard library only).

    cp core.env.example core.env
    python3 make_secrets.py core.env        # or: inv secrets --env-file deploy/compose/core.env

Generates what the compose file requires and is missing or empty: ``REDIS_PASSWORD`` (Redis'
``requirepass``; the core and workers connect with it), ``DSXCONNECT_AUTH__SERVER_KEY`` (every
connector's DSX-HMAC secret derives from it), an enrollment token and an operator API key. A value
already set is kept, so running it again changes nothing; a commented ``# NAME=`` line is replaced in
place. The file is made readable by its owner only (0600). Values are URL-safe (they go into
``redis://:<password>@…``).

It also makes ``dsxa-lite.env`` beside it when missing (a copy of ``dsxa-lite.env.example`` when that
is there): the env file of the ``dsxa`` profile's scanner, which never reads ``core.env`` (it unpacks
untrusted archives and must not hold the core's secrets) and which compose wants to exist.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import sys
from pathlib import Path

#: variable -> bytes of randomness (URL-safe base64 text, 4/3 as long)
SECRETS = {
    "REDIS_PASSWORD": 24,
    "DSXCONNECT_AUTH__SERVER_KEY": 32,
    "DSXCONNECT_AUTH__ENROLLMENT_TOKENS": 24,
    "DSXCONNECT_AUTH__API_KEYS": 24,
}
#: the env file of the compose ``dsxa`` profile's scanner (DSXA_LITE_ENV_FILE's default)
SCANNER_ENV_FILE = "dsxa-lite.env"
SCANNER_ENV_HEADER = """\
# Settings of the `dsxa` profile's scanner (dsxa_lite, prefix DSXA_LITE_): dsxa-lite.env.example and
# docs/dsxa_lite.md list them. No core secret belongs here. Its token is DSXCONNECT_SCANNER__AUTH_TOKEN
# of core.env (or the secrets overlay's scanner_auth_token): do not set DSXA_LITE_AUTH_TOKEN here.
"""


def scanner_env_file(core_env: Path) -> bool:
    """Make the scanner's env file beside ``core_env`` when it is missing; True when made."""
    target = core_env.with_name(SCANNER_ENV_FILE)
    if target.exists():
        return False
    example = core_env.with_name(SCANNER_ENV_FILE + ".example")
    target.write_text(example.read_text() if example.is_file() else SCANNER_ENV_HEADER)
    return True


def fill(path: Path) -> list[str]:
    """Set every missing or empty secret of ``path``; returns the names generated. Also makes the
    scanner's env file beside it when missing (:func:`scanner_env_file`)."""
    lines = path.read_text().splitlines() if path.exists() else []
    generated = []
    for name, size in SECRETS.items():
        set_line = re.compile(rf"^\s*{re.escape(name)}=(.*)$")
        commented = re.compile(rf"^\s*#\s*{re.escape(name)}=\s*$")
        current = [i for i, line in enumerate(lines) if set_line.match(line)]
        if current and set_line.match(lines[current[-1]]).group(1).strip():  # type: ignore[union-attr]
            continue
        value = f"{name}={secrets.token_urlsafe(size)}"
        spot = (
            current[-1] if current else next((i for i, ln in enumerate(lines) if commented.match(ln)), None)
        )
        if spot is None:
            lines.append(value)
        else:
            lines[spot] = value
        generated.append(name)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    os.chmod(path, 0o600)
    scanner_env_file(path)
    return generated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("env_file", nargs="?", default="core.env", help="the env file to fill (core.env)")
    parser.add_argument("--example", default="", help="copied to env_file first when it does not exist")
    args = parser.parse_args(argv)
    path = Path(args.env_file)
    example = Path(args.example) if args.example else path.with_name("core.env.example")
    if not path.exists() and example.is_file():
        shutil.copyfile(example, path)
    made_scanner_env = not path.with_name(SCANNER_ENV_FILE).exists()
    generated = fill(path)
    print(f"{path}: " + (f"generated {', '.join(generated)}" if generated else "every secret already set"))
    if made_scanner_env:
        print(f"{path.with_name(SCANNER_ENV_FILE)}: made (settings of the dsxa profile's scanner)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
