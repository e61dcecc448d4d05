"""Every Dockerfile: slim base, non-root numeric user, health check, version labels, real COPY sources."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from connectors.manifest import PACKAGES, manifest
from tests.deploy.conftest import REPO, SERVICE_PORTS

pytestmark = pytest.mark.unit

DOCKERFILES = sorted(
    p for p in REPO.glob("**/Dockerfile") if not {".venv", "node_modules", ".run", "dist"} & set(p.parts)
)


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, rest = full.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def service_dir(path: Path) -> str:
    return path.parent.relative_to(REPO).as_posix()


def test_every_service_has_a_dockerfile() -> None:
    found = {service_dir(p) for p in DOCKERFILES}
    for service in ("dsx_connect", "dsxa_lite", "connectors"):  # connectors: one, parameterised
        assert service in found
    for connector in REPO.glob("connectors/*/connector.py"):
        package = connector.parent.name
        assert package in PACKAGES, f"connectors/{package} has no manifest (connectors/manifest.py)"
        assert (connector.parent / "requirements.txt").is_file(), f"connectors/{package}/requirements.txt"


def test_the_connector_dockerfile_defaults_to_a_declared_connector() -> None:
    steps = instructions(REPO / "connectors" / "Dockerfile")
    args = dict(a.partition("=")[::2] for k, a in steps if k == "ARG")
    declared = manifest(args["CONNECTOR"])
    assert (args["NAME"], int(args["PORT"])) == (declared.name, declared.port)
    assert ("CMD", '["python", "-m", "connectors", "serve"]') in steps


def test_the_connector_image_keeps_its_key_file_in_a_directory_of_its_user() -> None:
    """DSXCONNECTOR_AUTH__KEY_FILE defaults under /var/lib/dsx-connector, created for the runtime uid."""
    steps = instructions(REPO / "connectors" / "Dockerfile")
    env = " ".join(a for k, a in steps if k == "ENV")
    assert "DSXCONNECTOR_AUTH__KEY_FILE=/var/lib/dsx-connector/hmac.key" in env.split()
    uid, _, gid = [a for k, a in steps if k == "USER"][-1].partition(":")
    runs = " ".join(a for k, a in steps if k == "RUN")
    made = re.search(r"install -d -m 0700 -o (\d+) -g (\d+) /var/lib/dsx-connector(\s|$)", runs)
    assert made and made.groups()[:2] == (uid, gid or uid), "no /var/lib/dsx-connector owned by USER"


def expanded(source: str) -> list[str]:
    """A COPY source of the connector Dockerfile for every connector (``${CONNECTOR}`` filled in)."""
    return [source.replace("${CONNECTOR}", package) for package in PACKAGES] if "${" in source else [source]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=service_dir)
def test_dockerfile(dockerfile: Path) -> None:
    steps = instructions(dockerfile)
    kinds = [kind for kind, _ in steps]
    froms = [args for kind, args in steps if kind == "FROM"]
    assert froms and all(re.match(r"python:3\.\d+-slim(\s|$)", f) for f in froms), froms

    users = [args for kind, args in steps if kind == "USER"]
    assert users, "no USER: the image would run as root"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0, f"USER {users[-1]}: use a numeric non-root uid (runAsNonRoot)"

    health = [args for kind, args in steps if kind == "HEALTHCHECK"]
    assert len(health) == 1 and " CMD " in f" {health[0]} ", health

    assert ("ARG", "VERSION=0.0.0") in steps or any(k == "ARG" and a.startswith("VERSION") for k, a in steps)
    labels = " ".join(args for kind, args in steps if kind == "LABEL")
    assert 'org.opencontainers.image.version="${VERSION}"' in labels
    assert "org.opencontainers.image.title=" in labels
    assert "org.opencontainers.image.revision=" in labels

    service = service_dir(dockerfile)
    # the connector image is built per connector: its requirements are connectors/<package>/requirements.txt
    own_requirements = (
        "connectors/${CONNECTOR}/requirements.txt"
        if service == "connectors"
        else f"{service}/requirements.txt"
    )
    copies = [shlex.split(args) for kind, args in steps if kind in ("COPY", "ADD")]
    sources = [src for parts in copies for src in [p for p in parts if not p.startswith("--")][:-1]]
    assert own_requirements in sources, "the image must install its own requirements.txt"
    for src in [one for source in sources for one in expanded(source)]:
        assert (REPO / src).exists(), f"COPY {src}: no such path in the repository"
        assert not src.startswith(("tests", ".venv", ".env")), f"COPY {src} into an image"

    if "dsx-healthcheck" in health[0]:
        assert any(parts[-1] == "/usr/local/bin/dsx-healthcheck" for parts in copies)
    entrypoint = [args for kind, args in steps if kind == "ENTRYPOINT"]
    if entrypoint and "dsx-entrypoint" in entrypoint[-1]:
        assert any(parts[-1] == "/usr/local/bin/dsx-entrypoint" for parts in copies)

    expose = [args for kind, args in steps if kind == "EXPOSE"]
    if service == "connectors":
        assert expose == ["${PORT}"], "the connector image exposes its manifest's port"
    if service in SERVICE_PORTS:
        assert expose == [str(SERVICE_PORTS[service])], (
            f"EXPOSE {expose}, SPEC §1 says {SERVICE_PORTS[service]}"
        )
    assert kinds.index("USER") > max(i for i, k in enumerate(kinds) if k in ("RUN", "COPY"))


def test_core_image_runs_the_api_by_default_and_serves_workers() -> None:
    steps = instructions(REPO / "dsx_connect" / "Dockerfile")
    assert ("ENTRYPOINT", '["dsx-entrypoint"]') in steps
    assert ("CMD", '["api"]') in steps


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_context() -> None:
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".env", "dist", "tests", "**/__pycache__"} <= ignored


# ---- requirements.txt of each image cover what its code imports

#: top-level module -> the requirement names that provide it (directly or as a dependency)
MODULE_DISTS = {
    "httptools": {"httptools", "uvicorn"},
    "anyio": {"anyio", "fastapi", "httpx"},
    "boto3": {"boto3"},
    "botocore": {"boto3", "botocore"},
    "celery": {"celery"},
    "kombu": {"celery", "kombu"},
    "fastapi": {"fastapi"},
    "starlette": {"fastapi", "starlette"},
    "httpx": {"httpx"},
    "msal": {"msal"},
    "requests": {"msal", "requests"},
    "cryptography": {"cryptography", "msal", "pyjwt"},
    "pydantic": {"pydantic"},
    "pydantic_settings": {"pydantic-settings"},
    "dotenv": {"python-dotenv", "pydantic-settings"},
    "redis": {"redis", "celery"},
    "sse_starlette": {"sse-starlette"},
    "uvicorn": {"uvicorn"},
    "uvloop": {"uvicorn", "uvloop"},
    "watchfiles": {"watchfiles", "uvicorn"},
    "yara_x": {"yara-x"},
    "azure": {"azure-storage-blob", "azure-identity"},
    "google": {"google-cloud-storage"},
    "yaml": {"pyyaml", "uvicorn"},
    "jwt": {"pyjwt"},
}
FIRST_PARTY = {"dsx_connect", "shared", "connectors", "dsxa_lite", "scripts", "tests"}


def _module_file(name: str) -> Path | None:
    path = REPO / name.replace(".", "/")
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def third_party_imports(package: Path) -> dict[str, str]:
    """Top-level third-party modules the code reachable from ``package`` imports -> one file importing it.

    First-party imports are followed (``shared`` modules the service actually uses), so a module of
    ``shared/`` that only another service uses does not count.
    """
    import ast
    import sys

    found: dict[str, str] = {}
    todo = sorted(package.rglob("*.py"))
    seen: set[Path] = set()
    while todo:
        file = todo.pop()
        if file in seen:
            continue
        seen.add(file)
        module = ".".join(file.relative_to(REPO).with_suffix("").parts)
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = module.split(".")[: -node.level if file.name != "__init__.py" else None]
                    if file.name == "__init__.py" and node.level > 1:
                        parent = parent[: -(node.level - 1)]
                    base = ".".join([*parent, base] if base else parent)
                names = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in FIRST_PARTY:
                    target = _module_file(name)
                    if target is not None:
                        todo.append(target)
                        parts = name.split(".")
                        todo += [
                            f for f in (_module_file(".".join(parts[:i])) for i in range(1, len(parts))) if f
                        ]
                elif top and top not in sys.stdlib_module_names:
                    found.setdefault(top, str(file.relative_to(REPO)))
    return found


def requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(re.split(r"[\[<>=!~; ]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


#: the folder of each image's code: the core, the scanner, and each connector built from connectors/Dockerfile
IMAGE_SOURCES = sorted(
    [p.parent for p in DOCKERFILES if service_dir(p) != "connectors"]
    + [REPO / "connectors" / package for package in PACKAGES]
)


@pytest.mark.parametrize("service", IMAGE_SOURCES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_requirements_cover_the_imports(service: Path) -> None:
    required = requirement_names(service / "requirements.txt")
    imported = third_party_imports(service)
    missing = {
        module: where
        for module, where in imported.items()
        if not MODULE_DISTS.get(module, {module.replace("_", "-")}) & required
    }
    assert not missing, f"imported but not in {service.name}/requirements.txt: {missing}"
