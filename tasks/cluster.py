"""Deployment checks and material: ``inv charts``, ``inv compose-check``, ``inv secrets``, ``inv certs``
(a development CA and server certificates, made by :mod:`devstack.certs`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from invoke import task

from devstack.certs import CERT_NAMES, CertError, make_certs
from tasks.common import (
    COMPONENTS,
    COMPOSE_DIR,
    HELM_DIR,
    ROOT,
    DeployError,
)


def chart_value_sets() -> list[tuple[str, str, dict]]:
    """(chart, label, values) the charts are checked with: defaults, and the auth+TLS examples."""
    import yaml  # PyYAML: a dependency of uvicorn[standard]

    examples = HELM_DIR / "examples"
    return [
        ("dsx-connect", "defaults", {}),
        (
            "dsx-connect",
            "auth-tls",
            yaml.safe_load((examples / "dsx-connect-values-auth-tls.yaml").read_text()),
        ),
        ("dsx-connect-connectors", "defaults", {}),
        (
            "dsx-connect-connectors",
            "auth-tls",
            yaml.safe_load((examples / "connectors-values-auth-tls.yaml").read_text()),
        ),
    ]


@task(help={"render_dir": "write the rendered manifests here (default: dist/rendered)"})
def charts(c, render_dir=""):
    """Render and lint the Helm charts offline (helm-python-sdk: Helm v4 as a library, no binary)."""
    try:
        import helm_python as helm
    except ImportError:
        sys.exit("charts: helm-python-sdk is not installed (pip install -e '.[test]')")
    out = Path(render_dir).resolve() if render_dir else ROOT / "dist" / "rendered"
    failed = False
    for chart, label, values in chart_value_sets():
        report = helm.lint(HELM_DIR / chart, values or None, strict=True)
        problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
        with helm.Chart.load(HELM_DIR / chart) as loaded:
            manifests = loaded.render(values or None, name="dsx", namespace="dsx-connect", is_install=True)
        target = out / f"{chart}-{label}.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(
            "".join(
                f"---\n# Source: {name}\n{text.strip()}\n"
                for name, text in sorted(manifests.items())
                if text.strip()
            )
        )
        print(f"  {chart} ({label}): {problems if problems else 'lint ok'}; rendered {target}")
        failed |= bool(problems)
    if failed:
        sys.exit(1)


def compose_files() -> list[tuple[Path, list[Path]]]:
    """(env example, compose files) pairs: every compose file with the env example it is used with."""
    pairs = []
    for comp in COMPONENTS.values():
        env = next(COMPOSE_DIR / f for f in comp.compose if f.endswith(".env.example"))
        files = [COMPOSE_DIR / f for f in comp.compose if f.startswith("docker-compose-")]
        main, overrides = files[0], files[1:]
        pairs.append((env, [main]))
        pairs += [(env, [main, extra]) for extra in overrides]
    return pairs


def compose_config(
    env_example: Path, files: Sequence[Path], workdir: Path
) -> subprocess.CompletedProcess[str]:
    """``docker-compose config -q`` of ``files`` in a copy of deploy/compose with the example as the env file."""
    binary = shutil.which("docker-compose")
    if binary is None:
        raise DeployError("docker-compose not found (Debian: apt-get install docker-compose)")
    if not (workdir / files[0].name).exists():
        shutil.copytree(COMPOSE_DIR, workdir, dirs_exist_ok=True)
    env_file = workdir / env_example.name.removesuffix(".example")
    shutil.copyfile(env_example, env_file)
    if env_example.name == "core.env.example":  # as an admin does: the required secrets, generated
        compose_secrets().fill(env_file)
    cmd = [binary, "--env-file", str(env_file)]
    for file in files:
        cmd += ["-f", str(workdir / file.name)]
    return subprocess.run(
        [*cmd, "config", "-q"], cwd=workdir, capture_output=True, text=True, check=False, env=_compose_env()
    )


def _compose_env() -> dict[str, str]:
    """The caller's environment without variables that would override the env file's values."""
    prefixes = (
        "DSX",
        "COMPOSE_",
        "REDIS_",
        "RSYSLOG_",
        "FILESYSTEM_",
        "AWS_",
        "AZURE_",
        "GOOGLE_",
        "GCS_",
        "SHAREPOINT_",
    )
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def compose_secrets() -> ModuleType:
    """``deploy/compose/make_secrets.py`` (shipped in the core bundle, standard library only), imported
    by name: ``deploy`` and ``deploy/compose`` are namespace packages of the repository."""
    import importlib

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("deploy.compose.make_secrets")


def compose_secrets_values(env_file: Path) -> dict[str, str]:
    """The secrets ``make_secrets.py`` manages, as set in ``env_file``."""
    names = set(compose_secrets().SECRETS)
    found = {}
    for line in env_file.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() in names:
            found[name.strip()] = value.strip()
    return found


@task(help={"env_file": "the core env file to fill (default deploy/compose/core.env, made from the example)"})
def secrets(c, env_file=""):
    """Generate the compose secrets a core env file lacks: Redis password, server key, token, API key."""
    path = Path(env_file).resolve() if env_file else COMPOSE_DIR / "core.env"
    if not path.exists():
        shutil.copyfile(COMPOSE_DIR / "core.env.example", path)
    generated = compose_secrets().fill(path)
    print(f"  {path}: " + (f"generated {', '.join(generated)}" if generated else "every secret already set"))


@task
def compose_check(c):
    """`docker-compose config -q` of every compose file with its env example (no Docker engine needed)."""
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for env, files in compose_files():
            try:
                result = compose_config(env, files, Path(tmp))
            except DeployError as exc:
                sys.exit(f"compose-check: {exc}")
            names = " + ".join(f.name for f in files)
            print(f"  {names}: {'ok' if result.returncode == 0 else result.stderr.strip()}")
            failed |= result.returncode != 0
    if failed:
        sys.exit(1)


# ---- development TLS material


@task(
    help={
        "out": "folder for ca.crt/ca.key and <name>.crt/.key (default dist/certs)",
        "hosts": "CSV of extra SANs on every certificate (a Kubernetes service DNS name, a host name, an IP)",
        "names": "CSV of certificate names (default: dsx-connect-api and every connector's 1.x service name)",
        "days": "validity of the server certificates (825)",
        "force": "make a new CA even if the folder has one",
    }
)
def certs(c, out="", hosts="", names="", days=825, force=False):
    """Development TLS: a dev CA and server certificates for the core and the connectors."""
    target = Path(out).resolve() if out else ROOT / "dist" / "certs"
    chosen = [n.strip() for n in names.split(",") if n.strip()] or list(CERT_NAMES)
    extra = [h.strip() for h in hosts.split(",") if h.strip()]
    try:
        written = make_certs(target, chosen, extra, int(days), force)
    except CertError as exc:
        sys.exit(f"certs: {exc}")
    for path in written:
        print(f"  {path}")
    print(f"CA: {target / 'ca.crt'} (trust it in DSXCONNECTOR_CA_BUNDLE / DSXCONNECT_CONNECTORS__CA_BUNDLE)")
    print("keys are 0600: containers run as uid 10001 (docs/deployment.md, TLS)")
