"""Release engineering: version pins, the CHANGELOG entry, ``inv release``, ``inv bundle``, ``inv images``."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import os
import re
import shlex
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from invoke import task

from tasks.common import (
    CHANGELOG,
    COMPONENTS,
    CORE_CHARTS,
    HELM_DIR,
    IMAGE_NAMESPACE,
    ROOT,
    SEMVER,
    VERSION_RE,
    DeployComponent,
    DeployError,
    _manifests,
)


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
