"""invoke tasks (`inv --list`): the Makefile's targets, `inv bench`, and the deployment tasks.

The Makefile stays the one place that says how each step runs; these tasks call it.
Deployment (docs/deployment.md): `inv bundle` (versioned tarballs of compose files, env examples,
Helm charts and docs into dist/), `inv release` (bump versions, write the CHANGELOG entry),
`inv certs` (a development CA and server certificates), `inv charts` (render and lint the Helm
charts offline), `inv compose-check` (docker-compose config of every compose file), `inv images`
(the docker build commands, version labels from each version.py).
`inv enrollment-token --connector-name NAME` mints an enrollment token scoped to one connector.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import ipaddress
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from invoke import Context, task

from scripts.faults import faults  # noqa: F401  (inv faults: the fault tests at 10,000 files; h7-state)

ROOT = Path(__file__).resolve().parent


def _make(c: Context, target: str, pytest_args: str = "") -> None:
    extra = f" PYTEST_ARGS={shlex.quote(pytest_args)}" if pytest_args else ""
    c.run(f"make -C {shlex.quote(str(ROOT))} --no-print-directory {target}{extra}", pty=False)


@task
def up(c):
    """Start the local stack and full-scan a sample folder (make up)."""
    _make(c, "up")


@task
def down(c):
    """Stop what `up` started (make down)."""
    _make(c, "down")


@task
def status(c):
    """Health of each component (make status)."""
    _make(c, "status")


@task(help={"args": "extra pytest arguments, e.g. '-k jobs -x'"})
def test(c, args=""):
    """The whole test suite (make test)."""
    _make(c, "test", args)


@task(help={"args": "extra pytest arguments"})
def test_unit(c, args=""):
    """Fast tests, marker unit (make test-unit)."""
    _make(c, "test-unit", args)


@task
def lint(c):
    """ruff check (make lint)."""
    _make(c, "lint")


@task
def format(c):
    """ruff format (make format)."""
    _make(c, "format")


@task
def type_check(c):
    """mypy (make type-check)."""
    _make(c, "type-check")


@task(
    help={
        "connector_name": "bind the token to this connector name",
        "connector_uuid": "bind the token to this connector uuid",
        "expires_in": "seconds until it expires (default: never)",
        "label": "a note shown in the list",
        "list_tokens": "list the scoped tokens instead of minting one",
        "revoke": "revoke the token with this id instead of minting one",
        "url": "the core (default DSXCONNECT_URL or http://127.0.0.1:8586)",
    }
)
def enrollment_token(
    c, connector_name="", connector_uuid="", expires_in=0, label="", list_tokens=False, revoke="", url=""
):
    """Mint (or list, revoke) an enrollment token scoped to one connector (dsx_connect.auth.cli)."""
    python = ROOT / os.environ.get("VENV", ".venv") / "bin" / "python"
    argv = [str(python), "-m", "dsx_connect.auth.cli"] + (["--url", url] if url else [])
    if list_tokens:
        argv.append("list")
    elif revoke:
        argv += ["revoke", revoke]
    else:
        argv += ["mint"] + (["--connector-name", connector_name] if connector_name else [])
        argv += ["--connector-uuid", connector_uuid] if connector_uuid else []
        argv += (["--expires-in", str(expires_in)] if expires_in else []) + (
            ["--label", label] if label else []
        )
    c.run(shlex.join(argv), pty=False, env={"PYTHONPATH": str(ROOT)})


@task(
    help={
        "args": "arguments for scripts/bench.py (or scripts/bench_results.py with --results-db)",
        "results_db": "sqlite or postgresql: benchmark the results history instead (scripts/bench_results.py)",
        "files": "files to scan, of 1-4 KiB unless args say otherwise (memory: peak RSS and Redis peak)",
        "client": "the workers' hot-path transport: http1 (default) or aiohttp (DSXCONNECT_SCANNER__CLIENT)",
    }
)
def bench(c, args="", results_db="", files=0, client=""):
    """Throughput benchmark (make bench): installs what it needs (wrk included), runs scripts/bench.py;
    with --results-db, the results history's benchmark (scripts/bench_results.py)."""
    if results_db:
        _make(c, "deps")
        python = ROOT / os.environ.get("VENV", ".venv") / "bin" / "python"
        script = ROOT / "scripts" / "bench_results.py"
        c.run(
            f"{shlex.quote(str(python))} {shlex.quote(str(script))} --results-db {shlex.quote(results_db)} {args}",
            pty=False,
        )
        return
    args = f"--files {int(files)} --min-kib 1 --max-kib 4 {args}" if files else args  # small files
    args = f"--client {shlex.quote(client)} {args}" if client else args
    c.run(
        f"make -C {shlex.quote(str(ROOT))} --no-print-directory bench BENCH_ARGS={shlex.quote(args)}",
        pty=False,
    )


@task(
    help={
        "url": "the database (default: DSXCONNECT_RESULTS_DB, e.g. postgresql://user:pass@host/db)",
        "revision": "target revision (default: head)",
    }
)
def db_upgrade(c, url="", revision="head"):
    """Upgrade the results history's schema (the Alembic revisions shipped in dsx_connect/db)."""
    from dsx_connect.db.migrate import current_revision, upgrade
    from dsx_connect.results.settings import ResultsDbSettings

    value = url or os.environ.get("DSXCONNECT_RESULTS_DB", "")
    try:
        config = ResultsDbSettings(url=value or "redis")
    except ValueError as exc:
        sys.exit(f"DSXCONNECT_RESULTS_DB: {exc}")
    if not config.durable:
        sys.exit(
            "no SQL history to upgrade: set DSXCONNECT_RESULTS_DB (or --url) to sqlite:///… or postgresql://…"
        )
    before = current_revision(config.sql_url)
    after = upgrade(config.sql_url, revision)
    print(f"results history: {before or 'empty'} -> {after}")


# --------------------------------------------------------------------------- deployment

DEPLOY = ROOT / "deploy"
COMPOSE_DIR = DEPLOY / "compose"
HELM_DIR = DEPLOY / "helm"
DOCS_DIR = ROOT / "docs"
CHANGELOG = ROOT / "CHANGELOG.md"
IMAGE_NAMESPACE = "dsxconnect"
VERSION_RE = re.compile(r'^__version__\s*=\s*["\'](\d+)\.(\d+)\.(\d+)["\']', re.M)
SEMVER = r"\d+\.\d+\.\d+"


@dataclass(frozen=True)
class DeployComponent:
    """One deployable piece: where its version lives and what its bundle holds."""

    name: str  # bundle name: dsx-connect-<name>-<version>.tar.gz
    version_file: str  # relative to the repository
    image: str  # dsxconnect/<image>
    compose: tuple[str, ...]  # files and folders under deploy/compose
    charts: tuple[str, ...] = ()  # chart folders under deploy/helm
    helm_examples: tuple[str, ...] = ()  # files under deploy/helm/examples
    connector_key: str = ""  # entry of the connectors chart's `connectors` values


def _manifests() -> list[Any]:
    """Every connector's declaration (``connectors/<package>/manifest.py``)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from connectors.manifest import manifests

    return list(manifests().values())


#: what a connector's bundle holds beyond its compose file and env example
CONNECTOR_EXTRA_FILES = {"google_cloud_storage": ("gcp/README.md",)}


def _connector(name: str, package: str, extra: tuple[str, ...] = ()) -> DeployComponent:
    return DeployComponent(
        name=name,
        version_file=f"connectors/{package}/version.py",
        image=f"{name}-connector",
        compose=(f"docker-compose-{name}-connector.yaml", f"{name}.env.example", "certs/README.md", *extra),
        charts=("dsx-connect-connectors",),
        helm_examples=("connectors-values-auth-tls.yaml",),
        connector_key=name,
    )


COMPONENTS: dict[str, DeployComponent] = {
    "core": DeployComponent(
        name="core",
        version_file="dsx_connect/version.py",
        image="dsx-connect",
        compose=(
            "docker-compose-dsx-connect-all-services.yaml",
            "docker-compose-dsx-connect.secrets.yaml",
            "docker-compose-dsx-connect.sentinel.yaml",  # Redis primary + replica + 3 Sentinels
            "docker-compose-dsxa.yaml",  # the optional DSXA appliance, beside the core or on its own
            "core.env.example",
            "make_secrets.py",
            "rsyslog",
            "certs/README.md",
        ),
        charts=("dsx-connect",),
        helm_examples=("dsx-connect-values-auth-tls.yaml",),
    ),
    "dsxa-lite": DeployComponent(
        name="dsxa-lite",
        version_file="dsxa_lite/version.py",
        image="dsxa-lite",
        compose=("docker-compose-dsxa-lite.yaml", "dsxa-lite.env.example", "dsxa-lite/README.md"),
    ),
    **{m.stem: _connector(m.stem, m.package, CONNECTOR_EXTRA_FILES.get(m.package, ())) for m in _manifests()},
}
#: charts whose version and appVersion follow the core's version
CORE_CHARTS = ("dsx-connect", "dsx-connect-connectors")


class DeployError(Exception):
    """A deployment task cannot go on; the message says why."""


def read_version(root: Path, component: DeployComponent) -> str | None:
    """The component's version (``x.y.z`` from its version.py), None when it has none yet."""
    path = root / component.version_file
    if not path.is_file():
        return None
    match = VERSION_RE.search(path.read_text())
    if not match:
        raise DeployError(f"{component.version_file}: no __version__ = 'x.y.z' line")
    return ".".join(match.groups())


def bump(version: str, part: str) -> str:
    """``version`` with its ``part`` (major, minor, patch) raised and the lower parts zeroed."""
    major, minor, patch = (int(n) for n in version.split("."))
    if part == "major":
        return f"{major + 1}.0.0"
    if part == "minor":
        return f"{major}.{minor + 1}.0"
    if part == "patch":
        return f"{major}.{minor}.{patch + 1}"
    raise DeployError(f"--part must be major, minor or patch (got {part!r})")


def select_components(names: str, root: Path = ROOT, strict: bool = True) -> list[DeployComponent]:
    """Components named in a CSV (``all`` or empty: every one that has a version file).

    Named components without a version file are an error when ``strict``; with ``all`` they are
    skipped (a connector whose code does not exist yet).
    """
    wanted = [n.strip() for n in names.split(",") if n.strip()] if names and names != "all" else []
    unknown = [n for n in wanted if n not in COMPONENTS]
    if unknown:
        raise DeployError(f"unknown component(s) {', '.join(unknown)}: use {', '.join(COMPONENTS)} or all")
    chosen = [COMPONENTS[n] for n in wanted] if wanted else list(COMPONENTS.values())
    missing = [c for c in chosen if read_version(root, c) is None]
    if missing and wanted and strict:
        raise DeployError(", ".join(f"{c.name} has no {c.version_file}" for c in missing))
    return [c for c in chosen if c not in missing]


def version_refs(root: Path = ROOT) -> list[tuple[Path, DeployComponent, re.Pattern[str]]]:
    """Every place under deploy/ that pins a component's image tag: (file, component, pattern).

    The pattern's group 1 is the text before the version: ``dsxconnect/<image>:`` (compose files,
    env examples) or ``dsxconnect/<image>, tag: "`` (Helm values).
    """
    refs = []
    files = [
        p for p in sorted((root / "deploy").rglob("*")) if p.is_file() and p.suffix in (".yaml", ".example")
    ]
    for component in COMPONENTS.values():
        image = re.escape(f"{IMAGE_NAMESPACE}/{component.image}")
        pattern = re.compile(rf"({image}:|{image}, tag: \")({SEMVER})")
        refs += [(path, component, pattern) for path in files if pattern.search(path.read_text())]
    return refs


def check_versions(root: Path = ROOT) -> list[str]:
    """Pinned image tags and chart versions that differ from the version files (empty: all agree)."""
    problems = []
    for path, component, pattern in version_refs(root):
        want = read_version(root, component)
        if want is None:
            continue
        for match in pattern.finditer(path.read_text()):
            if match.group(2) != want:
                problems.append(f"{path.relative_to(root)}: {match.group(0)} (want {want})")
    core = read_version(root, COMPONENTS["core"])
    for chart in CORE_CHARTS:
        text = (root / "deploy" / "helm" / chart / "Chart.yaml").read_text()
        for key in ("version", "appVersion"):
            found = re.search(rf'^{key}:\s*"?({SEMVER})"?', text, re.M)
            if not found or found.group(1) != core:
                problems.append(f"deploy/helm/{chart}/Chart.yaml: {key} is not the core's {core}")
    return problems


def apply_versions(root: Path, new: dict[str, str]) -> list[Path]:
    """Write new versions (component name -> x.y.z) into version files, image pins and charts."""
    changed: set[Path] = set()
    for name, version in new.items():
        path = root / COMPONENTS[name].version_file
        path.write_text(VERSION_RE.sub(f'__version__ = "{version}"', path.read_text(), count=1))
        changed.add(path)
    for path, component, pattern in version_refs(root):
        if component.name in new:
            text, version = path.read_text(), new[component.name]
            updated = pattern.sub(lambda m: m.group(1) + version, text)  # noqa: B023 - used at once
            if updated != text:
                path.write_text(updated)
                changed.add(path)
    if "core" in new:
        for chart in CORE_CHARTS:
            path = root / "deploy" / "helm" / chart / "Chart.yaml"
            text = re.sub(rf"^version:\s*{SEMVER}", f"version: {new['core']}", path.read_text(), flags=re.M)
            text = re.sub(rf'^appVersion:\s*"?{SEMVER}"?', f'appVersion: "{new["core"]}"', text, flags=re.M)
            path.write_text(text)
            changed.add(path)
    return sorted(changed)


CHANGELOG_HEAD = """# Changelog

All notable changes to dsx-connect. The format follows [Keep a Changelog](https://keepachangelog.com/),
versions follow [Semantic Versioning](https://semver.org/); `inv release` writes each entry.

## [Unreleased]
"""
COMMIT_SECTIONS = (
    ("feat", "Features"),
    ("fix", "Fixes"),
    ("perf", "Performance"),
    ("docs", "Documentation"),
)


def git_subjects(root: Path) -> list[str]:
    """Commit subjects since the last ``v*`` tag ([] when ``root`` is not a git work tree's top)."""

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)

    top = git("rev-parse", "--show-toplevel")
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != root.resolve():
        return []
    tag = git("describe", "--tags", "--abbrev=0", "--match", "v*")
    span = [f"{tag.stdout.strip()}..HEAD"] if tag.returncode == 0 else []
    log = git("log", "--no-merges", "--format=%s", *span)
    return [line.strip() for line in log.stdout.splitlines() if line.strip()]


def changelog_entry(
    versions: dict[str, tuple[str, str]], date: str, subjects: Sequence[str], unreleased: str
) -> str:
    """The Markdown of one release: versions, the Unreleased notes, conventional commits by type."""
    headline = versions.get("core", next(iter(versions.values())))[1]
    lines = [f"## [{headline}] - {date}", ""]
    lines += [f"- {name}: {old} → {new}" for name, (old, new) in versions.items()]
    if unreleased.strip():
        lines += ["", unreleased.strip()]
    groups: dict[str, list[str]] = {}
    for subject in subjects:
        match = re.match(r"^(\w+)(\([^)]*\))?!?:\s*(.+)$", subject)
        kind = match.group(1) if match else "other"
        if kind == "chore" and "release" in subject:
            continue
        scope = match.group(2)[1:-1] + ": " if match and match.group(2) else ""
        groups.setdefault(kind, []).append(scope + (match.group(3) if match else subject))
    titles = dict(COMMIT_SECTIONS)
    for kind in [k for k, _ in COMMIT_SECTIONS] + sorted(set(groups) - set(titles)):
        if groups.get(kind):
            lines += ["", f"### {titles.get(kind, 'Other')}" if kind in titles else f"### {kind}", ""]
            lines += [f"- {item}" for item in groups[kind]]
    return "\n".join(lines) + "\n"


def write_changelog(path: Path, entry: str) -> None:
    """Insert ``entry`` under ``## [Unreleased]`` (whose notes it took) and empty that section."""
    text = path.read_text() if path.exists() else CHANGELOG_HEAD
    if "## [Unreleased]" not in text:
        text = text.rstrip("\n") + "\n\n## [Unreleased]\n"
    head, _, rest = text.partition("## [Unreleased]")
    following = re.search(r"^## \[", rest, re.M)
    older = rest[following.start() :] if following else ""
    path.write_text(f"{head}## [Unreleased]\n\n{entry}\n{older}".rstrip("\n") + "\n")


def unreleased_notes(path: Path) -> str:
    """The text of the ``## [Unreleased]`` section ('' when there is none)."""
    if not path.exists():
        return ""
    _, found, rest = path.read_text().partition("## [Unreleased]")
    if not found:
        return ""
    following = re.search(r"^## \[", rest, re.M)
    return (rest[: following.start()] if following else rest).strip()


@task(
    help={
        "part": "major, minor or patch",
        "component": "CSV of components (core, dsxa-lite, filesystem, aws-s3, ...) or all (default)",
        "date": "release date for the changelog (default: today, UTC)",
        "dry_run": "print what would change, write nothing",
    }
)
def release(c, part="patch", component="all", date="", dry_run=False):
    """Bump versions (version.py files, image pins, charts) and write a CHANGELOG.md entry.

    Nothing is committed or tagged: the command prints the git commands to run.
    """
    try:
        chosen = select_components(component)
        versions = {}
        for comp in chosen:
            old = read_version(ROOT, comp)
            assert old is not None
            versions[comp.name] = (old, bump(old, part))
    except DeployError as exc:
        sys.exit(f"release: {exc}")
    day = date or dt.datetime.now(dt.UTC).date().isoformat()
    entry = changelog_entry(versions, day, git_subjects(ROOT), unreleased_notes(CHANGELOG))
    print(entry)
    if dry_run:
        print("(dry run: nothing written)")
        return
    changed = apply_versions(ROOT, {name: new for name, (_, new) in versions.items()})
    write_changelog(CHANGELOG, entry)
    for path in [*changed, CHANGELOG]:
        print(f"  wrote {path.relative_to(ROOT)}")
    headline = versions.get("core", next(iter(versions.values())))[1]
    print(f'next: git commit -am "chore(release): v{headline}" && git tag v{headline}')


def _tar_add(tar: tarfile.TarFile, arcname: str, data: bytes, mtime: int, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(arcname)
    info.size, info.mtime, info.mode = len(data), mtime, mode
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    tar.addfile(info, io.BytesIO(data))


def _files_under(path: Path) -> Iterable[Path]:
    if path.is_file():
        yield path
        return
    for child in sorted(path.rglob("*")):
        if child.is_file() and "__pycache__" not in child.parts and child.name != ".gitignore":
            yield child


def bundle_readme(comp: DeployComponent, version: str) -> str:
    """The README.md at the top of a bundle: what is in it and the two ways to run it."""
    compose = [f for f in comp.compose if f.startswith("docker-compose-")]
    env_file = next((f for f in comp.compose if f.endswith(".env.example")), "")
    env = env_file.removesuffix(".example")
    lines = [
        f"# dsx-connect {comp.name} {version}",
        "",
        f"Image: `{IMAGE_NAMESPACE}/{comp.image}:{version}`. Full guide: `docs/deployment.md`;",
        "when something fails: `docs/troubleshooting.md`.",
        "",
        "## Docker Compose",
        "",
        "```bash",
        "docker network create dsx-connect-network   # once per host (core and connectors share it)",
        f"cp {env_file} {env}   # then edit {env}",
        *(
            [f"python3 make_secrets.py {env}   # Redis password, server key, enrollment token, API key"]
            if "make_secrets.py" in comp.compose
            else []
        ),
        f"docker compose --env-file {env} -f {compose[0]} up -d",
        "```",
    ]
    if comp.charts:
        chart = comp.charts[0]
        lines += ["", "## Helm", "", "```bash"]
        if comp.connector_key:
            lines.append(f"helm install {comp.name} ./helm/{chart} -f helm/values-{comp.name}.yaml")
        else:
            lines.append(
                f"helm install dsx ./helm/{chart}            # defaults: embedded scanner, Redis with a PVC"
            )
        lines += ["```", "", "Examples with auth and TLS: `helm/examples/`."]
    return "\n".join(lines) + "\n"


def connector_values(comp: DeployComponent) -> str:
    """A values file of the connectors chart enabling only ``comp``."""
    lines = [
        f"# dsx-connect-connectors values for the {comp.name} connector alone.",
        f"#   helm install {comp.name} ./helm/dsx-connect-connectors -f helm/values-{comp.name}.yaml",
        "# Credentials: a Secret of yours (existingSecret), keys named after the variables.",
        "dsxConnectUrl: http://dsx-connect-api:8586",
        "connectors:",
    ]
    for other in COMPONENTS.values():
        if other.connector_key:
            lines.append(f"  {other.connector_key}:")
            lines.append(f"    enabled: {'true' if other is comp else 'false'}")
            if other is comp and comp.name != "filesystem":
                lines.append('    existingSecret: ""')
    return "\n".join(lines) + "\n"


def build_bundle(root: Path, comp: DeployComponent, out: Path, mtime: int | None = None) -> Path:
    """Write ``dsx-connect-<component>-<version>.tar.gz`` into ``out``; return its path."""
    version = read_version(root, comp)
    if version is None:
        raise DeployError(f"{comp.name} has no {comp.version_file}")
    stamp = int(os.environ.get("SOURCE_DATE_EPOCH", time.time())) if mtime is None else mtime
    top = f"dsx-connect-{comp.name}-{version}"
    entries: dict[str, tuple[bytes, int]] = {}

    def add_tree(src: Path, dest: str) -> None:
        if not src.exists():
            raise DeployError(f"{src.relative_to(root)} is missing")
        base = src.parent if src.is_dir() else None
        for file in _files_under(src):
            rel = file.relative_to(base).as_posix() if base else file.name
            entries[f"{top}/{dest}{rel}"] = (file.read_bytes(), 0o644)

    for item in comp.compose:
        src = root / "deploy" / "compose" / item
        dest = f"{Path(item).parent.as_posix()}/" if "/" in item and src.is_file() else ""
        add_tree(src, dest)
    for chart in comp.charts:
        add_tree(root / "deploy" / "helm" / chart, "helm/")
    for example in comp.helm_examples:
        add_tree(root / "deploy" / "helm" / "examples" / example, "helm/examples/")
    if comp.connector_key:
        entries[f"{top}/helm/values-{comp.name}.yaml"] = (connector_values(comp).encode(), 0o644)
    for doc in ("deployment.md", "troubleshooting.md"):
        add_tree(root / "docs" / doc, "docs/")
    if (root / "CHANGELOG.md").exists():
        add_tree(root / "CHANGELOG.md", "")
    entries[f"{top}/README.md"] = (bundle_readme(comp, version).encode(), 0o644)
    entries[f"{top}/VERSION"] = (f"{version}\n".encode(), 0o644)

    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{top}.tar.gz"
    fd, part = tempfile.mkstemp(dir=out, suffix=".part")
    try:
        # gzip and tar headers carry `stamp` only: SOURCE_DATE_EPOCH makes bundles reproducible
        with (
            os.fdopen(fd, "wb") as raw,
            gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=stamp) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for name in sorted(entries):
                data, mode = entries[name]
                _tar_add(tar, name, data, stamp, mode)
        os.replace(part, target)
    except BaseException:
        Path(part).unlink(missing_ok=True)
        raise
    return target


@task(
    help={
        "component": "CSV of components (core, dsxa-lite, filesystem, aws-s3, azure-blob-storage, "
        "google-cloud-storage, sharepoint) or all (default: those with a version.py)",
        "out": "output folder (default dist/)",
    }
)
def bundle(c, component="all", out=""):
    """Versioned deployment bundles: dist/dsx-connect-<component>-<version>.tar.gz (+ Helm packages)."""
    target = Path(out).resolve() if out else ROOT / "dist"
    try:
        chosen = select_components(component)
    except DeployError as exc:
        sys.exit(f"bundle: {exc}")
    skipped = [n for n, comp in COMPONENTS.items() if comp not in chosen and component in ("", "all")]
    for comp in chosen:
        print(f"  {build_bundle(ROOT, comp, target).relative_to(target.parent)}")
    for name in skipped:
        print(f"  skipped {name}: no {COMPONENTS[name].version_file} yet")
    charts = sorted({chart for comp in chosen for chart in comp.charts})
    if charts:
        try:
            import helm_python as helm
        except ImportError:
            print("  (helm-python-sdk not installed: no Helm packages; pip install helm-python-sdk)")
            return
        (target / "charts").mkdir(parents=True, exist_ok=True)
        for chart in charts:
            packaged = Path(helm.package(HELM_DIR / chart, destination=target / "charts"))
            print(f"  {packaged.relative_to(target.parent)}")


def image_build_commands(root: Path = ROOT, component: str = "all") -> list[list[str]]:
    """``docker build`` command lines of the images, version labels from each version.py."""

    def git(*args: str) -> str:
        result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
        return result.stdout.strip() if result.returncode == 0 else "unknown"

    revision = git("rev-parse", "HEAD")
    created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    commands = []
    connectors = {m.stem: m for m in _manifests()}
    for comp in select_components(component, root):
        dockerfile = Path(comp.version_file).parent / "Dockerfile"
        args = {"VERSION": read_version(root, comp), "REVISION": revision, "CREATED": created}
        if comp.name in connectors:  # one parameterised Dockerfile for every connector
            m = connectors[comp.name]
            dockerfile = Path("connectors/Dockerfile")
            args = {"CONNECTOR": m.package, "NAME": m.name, "PORT": str(m.port), **args}
        if not (root / dockerfile).is_file():
            continue
        version = args["VERSION"]
        build_args = [part for name, value in args.items() for part in ("--build-arg", f"{name}={value}")]
        tag = f"{IMAGE_NAMESPACE}/{comp.image}:{version}"
        commands.append(["docker", "build", "-f", dockerfile.as_posix(), *build_args, "-t", tag, "."])
    return commands


@task(
    help={
        "component": "CSV of components or all (default)",
        "build": "run the builds (needs a Docker engine); default: print the commands",
    }
)
def images(c, component="all", build=False):
    """The docker build commands of every image, tagged and labelled with each component's version."""
    try:
        commands = image_build_commands(ROOT, component)
    except DeployError as exc:
        sys.exit(f"images: {exc}")
    for command in commands:
        line = shlex.join(command)
        if build:
            c.run(line, pty=False)
        else:
            print(line)


# ---- Helm and compose checks


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
    """``deploy/compose/make_secrets.py`` (shipped in the core bundle, standard library only)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("dsx_make_secrets", COMPOSE_DIR / "make_secrets.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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

CERT_NAMES = (
    "dsx-connect-api",
    "filesystem-connector",
    "aws-s3-connector",
    "azure-blob-storage-connector",
    "google-cloud-storage-connector",
    "sharepoint-connector",
)
DEFAULT_SANS = ("localhost", "127.0.0.1", "::1")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def make_certs(
    out: Path,
    names: Sequence[str] = CERT_NAMES,
    extra_hosts: Sequence[str] = (),
    days: int = 825,
    backend: str = "auto",
    force: bool = False,
) -> list[Path]:
    """A dev CA (``ca.crt``/``ca.key``, reused unless ``force``) and ``<name>.crt``/``.key`` per name.

    Keys are ECDSA P-256 (PKCS#8 PEM), certificates SHA-256 with serverAuth and clientAuth.

    Each server certificate's SANs: its name, localhost, 127.0.0.1, ::1 and ``extra_hosts``.
    ``backend``: ``cryptography``, ``openssl`` (the CLI) or ``auto`` (the first available).
    """
    if backend == "auto":
        try:
            import cryptography  # noqa: F401

            backend = "cryptography"
        except ImportError:
            backend = "openssl"
    if backend not in ("cryptography", "openssl"):
        raise DeployError(f"backend must be cryptography, openssl or auto (got {backend!r})")
    if backend == "openssl" and shutil.which("openssl") is None:
        raise DeployError("neither the cryptography package nor the openssl CLI is available")
    out.mkdir(parents=True, exist_ok=True)
    make = _certs_cryptography if backend == "cryptography" else _certs_openssl
    written = make(out, list(names), list(extra_hosts), days, force)
    for path in written:
        path.chmod(0o600 if path.suffix == ".key" else 0o644)
    return written


def _certs_cryptography(out: Path, names: list[str], extra: list[str], days: int, force: bool) -> list[Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_crt, ca_key_path = out / "ca.crt", out / "ca.key"
    written = []
    if force or not (ca_crt.exists() and ca_key_path.exists()):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dsx-connect development CA")])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        ca_key_path.write_bytes(key_pem(ca_key))
        ca_crt.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        written += [ca_crt, ca_key_path]
    else:
        loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise DeployError(f"{ca_key_path} is not an ECDSA key: make a new CA with --force")
        ca_key = loaded
        ca_cert = x509.load_pem_x509_certificate(ca_crt.read_bytes())
    for name in names:
        key = ec.generate_private_key(ec.SECP256R1())
        sans = [
            x509.IPAddress(ipaddress.ip_address(h)) if _is_ip(h) else x509.DNSName(h)
            for h in _sans(name, extra)
        ]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        (out / f"{name}.key").write_bytes(key_pem(key))
        (out / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        written += [out / f"{name}.crt", out / f"{name}.key"]
    return written


def _sans(name: str, extra: Sequence[str]) -> list[str]:
    seen: list[str] = []
    for host in (name, *DEFAULT_SANS, *extra):
        if host and host not in seen:
            seen.append(host)
    return seen


def _certs_openssl(out: Path, names: list[str], extra: list[str], days: int, force: bool) -> list[Path]:
    def openssl(*args: str) -> None:
        result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise DeployError(f"openssl {args[0]} failed: {result.stderr.strip()}")

    ca_crt, ca_key = out / "ca.crt", out / "ca.key"
    written = []
    if force or not (ca_crt.exists() and ca_key.exists()):
        openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-sha256",
            "-days", "3650", "-keyout", str(ca_key), "-out", str(ca_crt), "-subj", "/CN=dsx-connect development CA",
            "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip
        written += [ca_crt, ca_key]
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            csr, ext = Path(tmp) / f"{name}.csr", Path(tmp) / f"{name}.ext"
            san = ",".join(f"IP:{h}" if _is_ip(h) else f"DNS:{h}" for h in _sans(name, extra))
            ext.write_text(
                f"subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n"
            )
            key = out / f"{name}.key"
            openssl(
                "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}",
            )  # fmt: skip
            openssl(
                "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-set_serial",
                str(int.from_bytes(os.urandom(8), "big")), "-sha256", "-days", str(days), "-extfile", str(ext),
                "-out", str(out / f"{name}.crt"),
            )  # fmt: skip
            written += [out / f"{name}.crt", key]
    return written


@task(
    help={
        "out": "folder for ca.crt/ca.key and <name>.crt/.key (default dist/certs)",
        "hosts": "CSV of extra SANs on every certificate (a Kubernetes service DNS name, a host name, an IP)",
        "names": "CSV of certificate names (default: dsx-connect-api and every connector's 1.x service name)",
        "days": "validity of the server certificates (825)",
        "backend": "cryptography, openssl or auto (default)",
        "force": "make a new CA even if the folder has one",
    }
)
def certs(c, out="", hosts="", names="", days=825, backend="auto", force=False):
    """Development TLS: a dev CA and server certificates for the core and the connectors."""
    target = Path(out).resolve() if out else ROOT / "dist" / "certs"
    chosen = [n.strip() for n in names.split(",") if n.strip()] or list(CERT_NAMES)
    extra = [h.strip() for h in hosts.split(",") if h.strip()]
    try:
        written = make_certs(target, chosen, extra, int(days), backend, force)
    except DeployError as exc:
        sys.exit(f"certs: {exc}")
    for path in written:
        print(f"  {path}")
    print(f"CA: {target / 'ca.crt'} (trust it in DSXCONNECTOR_CA_BUNDLE / DSXCONNECT_CONNECTORS__CA_BUNDLE)")
    print("keys are 0600: containers run as uid 10001 (docs/deployment.md, TLS)")
