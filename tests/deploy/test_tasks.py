"""inv bundle, inv release, inv certs and the version pins they keep (run in temporary folders)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

from tests.deploy.conftest import REPO

INVOKE = [sys.executable, "-m", "invoke"]


def run_invoke(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*INVOKE, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"inv {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


# ---------------------------------------------------------------- versions


@pytest.mark.unit
def test_pinned_versions_match_the_version_files(tasks_module: ModuleType) -> None:
    assert tasks_module.check_versions(REPO) == []
    pinned = {component.name for _, component, _ in tasks_module.version_refs(REPO)}
    assert {"core", "dsxa-lite", "filesystem", "aws-s3", "azure-blob-storage", "sharepoint"} <= pinned


@pytest.mark.unit
@pytest.mark.parametrize(
    ("version", "part", "expected"),
    [("0.1.0", "patch", "0.1.1"), ("0.1.9", "minor", "0.2.0"), ("1.4.2", "major", "2.0.0")],
)
def test_bump(tasks_module: ModuleType, version: str, part: str, expected: str) -> None:
    assert tasks_module.bump(version, part) == expected


@pytest.mark.unit
def test_bump_refuses_an_unknown_part(tasks_module: ModuleType) -> None:
    with pytest.raises(tasks_module.DeployError, match="major, minor or patch"):
        tasks_module.bump("1.0.0", "build")


@pytest.mark.unit
def test_changelog_entry_groups_conventional_commits(tasks_module: ModuleType, tmp_path: Path) -> None:
    entry = tasks_module.changelog_entry(
        {"core": ("0.1.0", "0.2.0"), "filesystem": ("0.1.0", "0.2.0")},
        "2030-01-02",
        ["feat(core): batches", "fix: a crash", "chore(release): v0.1.0", "perf(workers): faster", "tidy up"],
        "### Added\n\n- the thing",
    )
    assert entry.startswith("## [0.2.0] - 2030-01-02\n")
    assert "- core: 0.1.0 → 0.2.0" in entry and "- the thing" in entry
    assert "### Features\n\n- core: batches" in entry and "### Fixes\n\n- a crash" in entry
    assert "### Performance\n\n- workers: faster" in entry and "- tidy up" in entry
    assert "v0.1.0" not in entry
    changelog = tmp_path / "CHANGELOG.md"
    changelog.write_text(
        "# Changelog\n\n## [Unreleased]\n\n### Added\n\n- the thing\n\n## [0.1.0] - 2029-01-01\n\n- old\n"
    )
    tasks_module.write_changelog(changelog, entry)
    text = changelog.read_text()
    assert text.index("## [Unreleased]") < text.index("## [0.2.0]") < text.index("## [0.1.0]")
    assert tasks_module.unreleased_notes(changelog) == ""
    assert text.count("- the thing") == 1 and "- old" in text


@pytest.mark.unit
def test_image_build_commands_carry_each_version(tasks_module: ModuleType) -> None:
    commands = tasks_module.image_build_commands(REPO)
    assert commands
    for command in commands:
        dockerfile = REPO / command[command.index("-f") + 1]
        assert dockerfile.is_file()
        version_file = dockerfile.parent / "version.py"
        if dockerfile == REPO / "connectors" / "Dockerfile":  # one Dockerfile, a build per connector
            package = next(a.split("=", 1)[1] for a in command if a.startswith("CONNECTOR="))
            version_file = dockerfile.parent / package / "version.py"
        version = re.search(r'"([^"]+)"', version_file.read_text()).group(1)  # type: ignore[union-attr]
        assert f"VERSION={version}" in command
        assert command[command.index("-t") + 1].endswith(f":{version}")
        assert command[-1] == "."  # the repository root is the build context


# ---------------------------------------------------------------- bundle


@pytest.mark.integration
def test_bundle_archives_hold_what_an_admin_needs(tasks_module: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "dist"
    result = run_invoke(REPO, "bundle", "--out", str(out))
    expected = {
        name: tasks_module.read_version(REPO, component)
        for name, component in tasks_module.COMPONENTS.items()
        if tasks_module.read_version(REPO, component)
    }
    archives = {p.name for p in out.glob("*.tar.gz")}
    assert archives == {f"dsx-connect-{name}-{version}.tar.gz" for name, version in expected.items()}
    for name in set(tasks_module.COMPONENTS) - set(expected):
        assert f"skipped {name}" in result.stdout
    assert {p.name for p in (out / "charts").glob("*.tgz")} == {
        f"dsx-connect-{expected['core']}.tgz",
        f"dsx-connect-connectors-{expected['core']}.tgz",
    }

    unpacked = tmp_path / "unpacked"
    for name, version in expected.items():
        component = tasks_module.COMPONENTS[name]
        with tarfile.open(out / f"dsx-connect-{name}-{version}.tar.gz") as tar:
            members = tar.getmembers()
            assert all(m.isfile() and m.uid == 0 and m.mode == 0o644 for m in members)
            tar.extractall(unpacked, filter="data")
        top = unpacked / f"dsx-connect-{name}-{version}"
        files = {p.relative_to(top).as_posix() for p in top.rglob("*") if p.is_file()}
        assert {
            "README.md",
            "VERSION",
            "CHANGELOG.md",
            "docs/deployment.md",
            "docs/troubleshooting.md",
        } <= files
        assert (top / "VERSION").read_text() == f"{version}\n"
        for item in component.compose:
            source = REPO / "deploy" / "compose" / item
            if source.is_file():
                assert (top / item).read_bytes() == source.read_bytes(), item
            else:
                assert any(f.startswith(f"{item}/") for f in files), item
        for chart in component.charts:
            assert (top / "helm" / chart / "Chart.yaml").read_bytes() == (
                REPO / "deploy" / "helm" / chart / "Chart.yaml"
            ).read_bytes()
            assert any(f.startswith(f"helm/{chart}/templates/") for f in files)
        if component.connector_key:
            values = (top / "helm" / f"values-{name}.yaml").read_text()
            assert f"  {component.connector_key}:\n    enabled: true" in values
        assert f"dsxconnect/{component.image}:{version}" in (top / "README.md").read_text()
        assert not [f for f in files if "__pycache__" in f or f.endswith((".gitignore", ".pyc"))]

    core = unpacked / f"dsx-connect-core-{expected['core']}"
    assert (core / "rsyslog" / "rsyslog.conf").is_file() and (core / "certs" / "README.md").is_file()
    assert "python3 make_secrets.py core.env" in (core / "README.md").read_text()
    if shutil.which("docker-compose"):  # the bundle's own quick start validates
        shutil.copyfile(core / "core.env.example", core / "core.env")
        config = [
            "docker-compose",
            "--env-file",
            "core.env",
            "-f",
            "docker-compose-dsx-connect-all-services.yaml",
        ]

        def compose_config() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*config, "config", "-q"],
                cwd=core, capture_output=True, text=True, check=False, env=tasks_module._compose_env(),
            )  # fmt: skip

        refused = compose_config()  # the secrets are required: no Redis without a password
        assert refused.returncode != 0 and "REDIS_PASSWORD is required" in refused.stderr
        made = subprocess.run(
            [sys.executable, "make_secrets.py", "core.env"],
            cwd=core,
            capture_output=True,
            text=True,
            check=False,
        )
        assert made.returncode == 0 and "REDIS_PASSWORD" in made.stdout, made.stderr
        check = compose_config()
        assert check.returncode == 0, check.stderr


@pytest.mark.integration
def test_bundle_is_reproducible_with_source_date_epoch(tasks_module: ModuleType, tmp_path: Path) -> None:
    component = tasks_module.COMPONENTS["core"]
    first = tasks_module.build_bundle(REPO, component, tmp_path / "a", mtime=1_700_000_000)
    second = tasks_module.build_bundle(REPO, component, tmp_path / "b", mtime=1_700_000_000)
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.unit
def test_bundle_refuses_unknown_or_missing_components(tasks_module: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(tasks_module.DeployError, match="unknown component"):
        tasks_module.select_components("core,ftp")
    (tmp_path / "dsx_connect").mkdir()
    with pytest.raises(tasks_module.DeployError, match="has no"):
        tasks_module.select_components("core", root=tmp_path)


# ---------------------------------------------------------------- release


def release_copy(tmp_path: Path) -> Path:
    """The files `inv release` reads and writes, copied: the real repository is never touched."""
    root = tmp_path / "repo"
    for rel in ("CHANGELOG.md",):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / rel, root / rel)
    for package in ("tasks", "devstack"):  # the tasks, and the certificates they import
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "deploy", root / "deploy")
    declarations = [
        REPO / "connectors" / "manifest.py",
        *REPO.glob("connectors/*/manifest.py"),
    ]  # tasks reads them
    inits = [REPO / "connectors" / "__init__.py", *REPO.glob("connectors/*/__init__.py")]
    for version_file in [
        *REPO.glob("*/version.py"),
        *REPO.glob("connectors/*/version.py"),
        *declarations,
        *inits,
    ]:
        target = root / version_file.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(version_file, target)
    return root


@pytest.mark.integration
def test_release_patch_bumps_versions_and_writes_the_changelog(
    tasks_module: ModuleType, tmp_path: Path
) -> None:
    before = {
        p: p.read_bytes()
        for p in [REPO / "CHANGELOG.md", *REPO.glob("**/version.py")]
        if ".venv" not in p.parts
    }
    root = release_copy(tmp_path)
    old = {
        name: tasks_module.read_version(root, c)
        for name, c in tasks_module.COMPONENTS.items()
        if tasks_module.read_version(root, c)
    }
    notes = tasks_module.unreleased_notes(root / "CHANGELOG.md")
    result = run_invoke(root, "release", "--part", "patch", "--date", "2030-01-02")
    new = {name: tasks_module.bump(version, "patch") for name, version in old.items()}
    for name, version in new.items():
        assert tasks_module.read_version(root, tasks_module.COMPONENTS[name]) == version
    assert tasks_module.check_versions(root) == []
    chart = (root / "deploy/helm/dsx-connect/Chart.yaml").read_text()
    assert f"version: {new['core']}\n" in chart and f'appVersion: "{new["core"]}"' in chart
    compose = (root / "deploy/compose/docker-compose-dsx-connect-all-services.yaml").read_text()
    assert f"dsxconnect/dsx-connect:{new['core']}" in compose
    assert f"dsxconnect/dsxa-lite:{new['dsxa-lite']}" in compose
    changelog = (root / "CHANGELOG.md").read_text()
    head = changelog.index("## [Unreleased]")
    entry = changelog.index(f"## [{new['core']}] - 2030-01-02")
    assert head < entry
    assert f"- core: {old['core']} → {new['core']}" in changelog
    if notes:
        assert notes.splitlines()[-1] in changelog[entry:]
    assert tasks_module.unreleased_notes(root / "CHANGELOG.md") == ""
    assert "git tag v" in result.stdout
    assert {p: p.read_bytes() for p in before} == before, "the real repository changed"


@pytest.mark.integration
def test_release_of_one_component_leaves_the_others(tasks_module: ModuleType, tmp_path: Path) -> None:
    root = release_copy(tmp_path)
    core = tasks_module.read_version(root, tasks_module.COMPONENTS["core"])
    filesystem = tasks_module.read_version(root, tasks_module.COMPONENTS["filesystem"])
    run_invoke(root, "release", "--part", "minor", "--component", "filesystem", "--date", "2030-01-02")
    assert tasks_module.read_version(root, tasks_module.COMPONENTS["core"]) == core
    new = tasks_module.bump(filesystem, "minor")
    assert tasks_module.read_version(root, tasks_module.COMPONENTS["filesystem"]) == new
    assert tasks_module.check_versions(root) == []
    values = (root / "deploy/helm/dsx-connect-connectors/values.yaml").read_text()
    assert f'dsxconnect/filesystem-connector, tag: "{new}"' in values
    assert f"## [{new}] - 2030-01-02" in (root / "CHANGELOG.md").read_text()


# ---------------------------------------------------------------- certs


def verify_certs(folder: Path, names: list[str], extra: list[str]) -> None:
    from cryptography import x509

    ca = x509.load_pem_x509_certificate((folder / "ca.crt").read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    for name in names:
        crt, key = folder / f"{name}.crt", folder / f"{name}.key"
        if shutil.which("openssl"):
            check = subprocess.run(
                ["openssl", "verify", "-CAfile", str(folder / "ca.crt"), str(crt)],
                capture_output=True,
                text=True,
                check=False,
            )
            assert check.returncode == 0 and check.stdout.strip().endswith("OK"), check.stdout + check.stderr
        cert = x509.load_pem_x509_certificate(crt.read_bytes())
        cert.verify_directly_issued_by(ca)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = set(sans.get_values_for_type(x509.DNSName))
        ips = {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
        assert {name, "localhost", *extra} <= dns and {"127.0.0.1", "::1"} <= ips
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
        assert key.stat().st_mode & 0o777 == 0o600
        from cryptography.hazmat.primitives import serialization

        private = serialization.load_pem_private_key(key.read_bytes(), password=None)
        assert private.public_key().public_numbers() == cert.public_key().public_numbers()  # type: ignore[union-attr]


@pytest.mark.integration
def test_certs_make_a_ca_and_server_certificates_that_verify(
    tasks_module: ModuleType, tmp_path: Path
) -> None:
    names = ["dsx-connect-api", "filesystem-connector"]
    written = tasks_module.make_certs(tmp_path, names, ["dsx-connect-api.scan.svc"])
    assert {p.name for p in written} == {
        "ca.crt",
        "ca.key",
        *(f"{n}.{s}" for n in names for s in ("crt", "key")),
    }
    verify_certs(tmp_path, names, ["dsx-connect-api.scan.svc"])
    ca = (tmp_path / "ca.crt").read_bytes()
    tasks_module.make_certs(tmp_path, ["sharepoint-connector"])  # the CA is reused
    assert (tmp_path / "ca.crt").read_bytes() == ca
    verify_certs(tmp_path, ["sharepoint-connector"], [])


@pytest.mark.integration
def test_inv_certs_task(tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    result = run_invoke(REPO, "certs", "--out", str(tmp_path), "--hosts", "core.example.com")
    assert "ca.crt" in result.stdout
    names = ["dsx-connect-api", "filesystem-connector", "aws-s3-connector", "azure-blob-storage-connector"]
    names += ["google-cloud-storage-connector", "sharepoint-connector"]
    verify_certs(tmp_path, names, ["core.example.com"])
    assert os.listdir(tmp_path)
