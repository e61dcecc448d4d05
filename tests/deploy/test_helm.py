"""Helm charts: lint and render offline (helm-python-sdk: Helm v4 as a library, no helm binary),
then check what matters in the manifests: images, SPEC §9 names, probes, secrets by reference."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import (
    HELM_DIR,
    REPO,
    SECRET_NAME,
    SERVICE_PORTS,
    connector_env_names,
    core_env_names,
)

helm = pytest.importorskip(
    "helm_python", reason="helm-python-sdk is not installed (pip install -e '.[test]')"
)

pytestmark = pytest.mark.unit

CORE = HELM_DIR / "dsx-connect"
CONNECTORS = HELM_DIR / "dsx-connect-connectors"
EXAMPLES = HELM_DIR / "examples"
CORE_AUTH_TLS = yaml.safe_load((EXAMPLES / "dsx-connect-values-auth-tls.yaml").read_text())
CONNECTORS_AUTH_TLS = yaml.safe_load((EXAMPLES / "connectors-values-auth-tls.yaml").read_text())
QUEUES = {
    "scan": "scan_request_queue",
    "action": "verdict_action_queue",
    "result": "scan_result_queue",
    "notify": "scan_result_notification_queue",
}
SENTINEL = "s3cr3t-sentinel-value"


def version_of(path: str) -> str:
    return re.search(r'__version__\s*=\s*"([^"]+)"', (REPO / path).read_text()).group(1)  # type: ignore[union-attr]


def render(chart: Path, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    with helm.Chart.load(chart) as loaded:
        manifests = loaded.render(values or None, name="dsx", namespace="scan", is_install=True)
    return [
        doc
        for name, text in sorted(manifests.items())
        if name.endswith(".yaml")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def notes(chart: Path, values: dict[str, Any] | None = None) -> str:
    with helm.Chart.load(chart) as loaded:
        manifests = loaded.render(values or None, name="dsx", namespace="scan", is_install=True)
    return next(text for name, text in manifests.items() if name.endswith("NOTES.txt"))


def render_error(chart: Path, values: dict[str, Any]) -> str:
    with pytest.raises(helm.HelmError) as info:
        render(chart, values)
    return str(info.value)


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def containers(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            out += [(doc["metadata"]["name"], c) for c in doc["spec"]["template"]["spec"]["containers"]]
    return out


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def chart_meta(chart: Path) -> dict[str, Any]:
    return yaml.safe_load((chart / "Chart.yaml").read_text())


# ---------------------------------------------------------------- lint


@pytest.mark.parametrize(
    ("chart", "values"),
    [(CORE, None), (CORE, CORE_AUTH_TLS), (CONNECTORS, None), (CONNECTORS, CONNECTORS_AUTH_TLS)],
    ids=["core-defaults", "core-auth-tls", "connectors-defaults", "connectors-auth-tls"],
)
def test_chart_lints_clean(chart: Path, values: dict[str, Any] | None) -> None:
    report = helm.lint(chart, values, strict=True, kube_version="v1.29.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report
    assert notes(chart, values).strip()


def test_chart_versions_follow_the_code() -> None:
    core = version_of("dsx_connect/version.py")
    for chart in (CORE, CONNECTORS):
        meta = chart_meta(chart)
        assert (meta["version"], meta["appVersion"]) == (core, core), chart.name


# ---------------------------------------------------------------- core chart


def test_core_defaults_render_every_piece() -> None:
    docs = render(CORE)
    deployments = by_kind(docs, "Deployment")
    assert set(deployments) == {
        "dsx-dsx-connect-api",
        "dsx-dsx-connect-dsxa-lite",
        *(f"dsx-dsx-connect-worker-{name}" for name in QUEUES),
    }
    assert set(by_kind(docs, "StatefulSet")) == {"dsx-dsx-connect-redis"}
    assert {"dsx-connect-api", "dsx-dsx-connect-redis", "dsx-dsx-connect-dsxa-lite"} <= set(
        by_kind(docs, "Service")
    )
    assert set(by_kind(docs, "Secret")) == {"dsx-dsx-connect-secrets"}
    # nothing given: only what the chart generates (tests below: test_core_generates_...)
    assert set(by_kind(docs, "Secret")["dsx-dsx-connect-secrets"]["stringData"]) == {
        "REDIS_PASSWORD",
        "DSXCONNECT_AUTH__SERVER_KEY",
        "DSXCONNECT_AUTH__ENROLLMENT_TOKENS",
        "DSXCONNECT_AUTH__API_KEYS",
    }
    assert not by_kind(docs, "HorizontalPodAutoscaler")
    api_service = by_kind(docs, "Service")["dsx-connect-api"]
    assert api_service["spec"]["ports"][0]["port"] == SERVICE_PORTS["dsx_connect"]


def test_core_images_follow_app_version_and_values() -> None:
    docs = render(CORE)
    app_version = chart_meta(CORE)["appVersion"]
    for name, container in containers(docs):
        if "dsxa-lite" in name:
            assert container["image"] == f"dsxconnect/dsxa-lite:{version_of('dsxa_lite/version.py')}"
        elif "redis" in name:
            assert container["image"] == "redis:7.2-alpine"
        else:
            assert container["image"] == f"dsxconnect/dsx-connect:{app_version}", name
    pinned = render(CORE, {"image": {"tag": "9.9.9", "repository": "registry.example/dsx"}})
    api = by_kind(pinned, "Deployment")["dsx-dsx-connect-api"]["spec"]["template"]["spec"]["containers"][0]
    assert api["image"] == "registry.example/dsx:9.9.9"


@pytest.mark.parametrize("values", [None, CORE_AUTH_TLS], ids=["defaults", "auth-tls"])
def test_core_env_names_are_spec_names(values: dict[str, Any] | None) -> None:
    docs = render(CORE, values)
    allowed = core_env_names() | {"REDIS_PASSWORD", "REDISCLI_AUTH", "DSXA_LITE_AUTH_TOKEN"}
    config = next(iter(by_kind(docs, "ConfigMap").values()))
    names = set(config["data"])
    for _, container in containers(docs):
        names |= set(env_of(container))
    unknown = names - allowed
    assert not unknown, f"names no service reads: {sorted(unknown)}"
    assert {
        "DSXCONNECT_REDIS_URL",
        "DSXCONNECT_SCANNER__SCAN_BINARY_URL",
        "DSXCONNECT_SCANNER__AUTH_TOKEN",
    } <= names


@pytest.mark.parametrize("values", [None, CORE_AUTH_TLS], ids=["defaults", "auth-tls"])
def test_core_secrets_are_referenced_never_inlined(values: dict[str, Any] | None) -> None:
    values = copy.deepcopy(values or {})
    if not values.get("secrets", {}).get("existingSecret"):
        values.setdefault("secrets", {})["values"] = {"DSXCONNECT_SCANNER__AUTH_TOKEN": SENTINEL}
    docs = render(CORE, values)
    secret_name = (values.get("secrets") or {}).get("existingSecret") or "dsx-dsx-connect-secrets"
    for doc in docs:
        if doc["kind"] != "Secret":
            assert SENTINEL not in yaml.safe_dump(doc), (
                f"{doc['kind']} {doc['metadata']['name']} holds a secret"
            )
    config = next(iter(by_kind(docs, "ConfigMap").values()))
    assert not [key for key in config["data"] if SECRET_NAME.search(key)]
    for name, container in containers(docs):
        for var, entry in env_of(container).items():
            if SECRET_NAME.search(var) or var in ("DSXCONNECT_AUTH__API_KEYS",):
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                assert ref and ref["name"] == secret_name and "value" not in entry, f"{name}: {var}"
    if not (values.get("secrets") or {}).get("existingSecret"):
        data = by_kind(docs, "Secret")[secret_name]["stringData"]
        assert data["DSXCONNECT_SCANNER__AUTH_TOKEN"] == SENTINEL
        assert set(data) == {
            "DSXCONNECT_SCANNER__AUTH_TOKEN",
            "REDIS_PASSWORD",
            "DSXCONNECT_AUTH__SERVER_KEY",
            "DSXCONNECT_AUTH__ENROLLMENT_TOKENS",
            "DSXCONNECT_AUTH__API_KEYS",
        }


def test_core_refuses_a_secret_in_plain_env() -> None:
    message = render_error(CORE, {"env": {"DSXCONNECT_SCANNER__AUTH_TOKEN": "x"}})
    assert "is a secret" in message


def test_core_probes_plain_and_tls() -> None:
    for values, scheme in ((None, None), (CORE_AUTH_TLS, "HTTPS")):
        docs = render(CORE, values)
        api = by_kind(docs, "Deployment")["dsx-dsx-connect-api"]["spec"]["template"]["spec"]
        container = api["containers"][0]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert container[probe]["httpGet"].get("scheme") == scheme
        env = env_of(container)
        if scheme:
            assert env["DSXCONNECT_USE_TLS"]["value"] == "true"
            mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
            assert env["DSXCONNECT_TLS_CERTFILE"]["value"].startswith(mounts["tls"])
            assert env["DSXCONNECT_TLS_KEYFILE"]["value"].startswith(mounts["tls"])
            volumes = {v["name"]: v for v in api["volumes"]}
            assert volumes["tls"]["secret"]["secretName"] == CORE_AUTH_TLS["tls"]["secretName"]
            assert env["DSXCONNECT_CONNECTORS__CA_BUNDLE"]["value"].startswith(mounts["connectors-ca"])
        else:
            assert "DSXCONNECT_USE_TLS" not in env
        for name, worker in containers(docs):
            if "worker" in name:
                assert worker["livenessProbe"]["exec"]["command"] == ["dsx-healthcheck", "worker"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert api["securityContext"]["runAsNonRoot"] is True


def test_core_api_workers_reach_the_api_pod_only_when_asked() -> None:
    def api_env(values: dict[str, Any] | None) -> dict[str, Any]:
        api = by_kind(render(CORE, values), "Deployment")["dsx-dsx-connect-api"]
        return env_of(api["spec"]["template"]["spec"]["containers"][0])

    assert "DSXCONNECT_API_WORKERS" not in api_env(None)
    assert api_env({"api": {"workers": 2}})["DSXCONNECT_API_WORKERS"]["value"] == "2"
    # uvicorn trusts X-Forwarded-* from these only (the Secure cookie and login limits behind an ingress)
    assert "FORWARDED_ALLOW_IPS" not in api_env(None)
    trusted = api_env({"api": {"trustedProxies": "10.42.0.0/16"}})
    assert trusted["FORWARDED_ALLOW_IPS"]["value"] == "10.42.0.0/16"


def test_core_workers_one_per_queue_with_pools_and_autoscaling() -> None:
    docs = render(CORE, CORE_AUTH_TLS)
    deployments = by_kind(docs, "Deployment")
    for short, queue in QUEUES.items():
        worker = deployments[f"dsx-dsx-connect-worker-{short}"]
        args = worker["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[:2] == ["worker", queue]
        pool = args[args.index("--pool") + 1]
        if short == "scan":
            assert (pool, args[args.index("--concurrency") + 1]) == ("prefork", "4")
            assert "replicas" not in worker["spec"]  # the HPA owns it
        else:
            assert pool == "solo" and "--concurrency" not in args
            assert worker["spec"]["replicas"] == 1
    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    assert set(hpas) == {"dsx-dsx-connect-api", "dsx-dsx-connect-worker-scan"}
    for hpa in hpas.values():
        assert hpa["spec"]["scaleTargetRef"]["name"] in deployments
    assert hpas["dsx-dsx-connect-worker-scan"]["spec"]["maxReplicas"] == 10


def test_core_redis_statefulset_with_aof_pvc_and_auth() -> None:
    docs = render(CORE, CORE_AUTH_TLS)
    redis = by_kind(docs, "StatefulSet")["dsx-dsx-connect-redis"]
    container = redis["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--appendfsync") + 1] == "everysec"
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    assert env_of(container)["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "REDIS_PASSWORD"
    claim = redis["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "8Gi"
    assert container["readinessProbe"]["exec"] and container["livenessProbe"]["exec"]
    for name, app in containers(docs):
        if "redis" not in name:
            env = env_of(app)
            if "DSXCONNECT_REDIS_URL" in env:
                assert (
                    env["DSXCONNECT_REDIS_URL"]["value"]
                    == "redis://:$(REDIS_PASSWORD)@dsx-dsx-connect-redis:6379/0"
                )
                names = list(env)
                assert names.index("REDIS_PASSWORD") < names.index("DSXCONNECT_REDIS_URL")


def test_core_redis_has_a_memory_bound_under_its_limit_and_never_evicts() -> None:
    """noeviction: a full Redis refuses writes and the core answers 503 (docs/reliability.md); the
    bound stays under the container's limit, else the kernel kills Redis before it refuses."""
    values = yaml.safe_load((CORE / "values.yaml").read_text())
    assert values["redis"]["maxmemory"] == "1280mb"
    assert values["redis"]["resources"]["limits"]["memory"] == "2Gi"  # 1280mb: 62.5 % of it
    for given, expected in [({}, "1280mb"), ({"redis": {"maxmemory": "3gb"}}, "3gb")]:
        redis = by_kind(render(CORE, given), "StatefulSet")["dsx-dsx-connect-redis"]
        args = redis["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[args.index("--maxmemory") + 1] == expected
        assert args[args.index("--maxmemory-policy") + 1] == "noeviction"


def test_core_default_install_generates_what_auth_needs_and_notes_say_how_to_read_it() -> None:
    """`helm install dsx ./dsx-connect` with no values: the API's auth finds an enrollment token and
    an API key (else it refuses to start: a crash loop), generated like the server key."""
    from dsx_connect.auth.settings import AuthSettings

    keys = ("DSXCONNECT_AUTH__ENROLLMENT_TOKENS", "DSXCONNECT_AUTH__API_KEYS")
    first, second = (
        by_kind(render(CORE), "Secret")["dsx-dsx-connect-secrets"]["stringData"] for _ in range(2)
    )
    for key in keys:
        assert len(first[key]) == 40 and first[key].isalnum(), key
        assert first[key] != second[key], f"{key} is a constant, not generated"
    assert len({first[k] for k in (*keys, "REDIS_PASSWORD", "DSXCONNECT_AUTH__SERVER_KEY")}) == 4
    auth = AuthSettings(
        enabled=True,
        enrollment_tokens=first["DSXCONNECT_AUTH__ENROLLMENT_TOKENS"],
        api_keys=first["DSXCONNECT_AUTH__API_KEYS"],
        server_key=first["DSXCONNECT_AUTH__SERVER_KEY"],
    )
    assert auth.missing() == []
    text = notes(CORE)
    for key in keys:
        assert (
            f"kubectl -n scan get secret dsx-dsx-connect-secrets -o jsonpath='{{.data.{key}}}' | base64 -d"
            in text
        ), key

    # a value given is kept; with auth off none is made
    def secret_data(values: dict[str, Any]) -> dict[str, str]:
        return by_kind(render(CORE, values), "Secret")["dsx-dsx-connect-secrets"]["stringData"]

    chosen = {"DSXCONNECT_AUTH__API_KEYS": "operator-key-0123456789"}
    assert (
        secret_data({"secrets": {"values": chosen}})["DSXCONNECT_AUTH__API_KEYS"]
        == chosen["DSXCONNECT_AUTH__API_KEYS"]
    )
    assert not set(keys) & set(secret_data({"auth": {"enabled": False}}))


def test_core_generates_the_redis_password_and_server_key_on_first_install() -> None:
    first, second = (by_kind(render(CORE), "Secret")["dsx-dsx-connect-secrets"] for _ in range(2))
    for key in ("REDIS_PASSWORD", "DSXCONNECT_AUTH__SERVER_KEY"):
        value = first["stringData"][key]
        assert len(value) == 40 and value.isalnum(), key
        assert value != second["stringData"][key], f"{key} is a constant, not generated"
    assert first["stringData"]["REDIS_PASSWORD"] != first["stringData"]["DSXCONNECT_AUTH__SERVER_KEY"]
    assert first["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    # kept on upgrade: the values come from the release's Secret when Helm can look it up
    template = (CORE / "templates" / "secret.yaml").read_text()
    assert 'lookup "v1" "Secret" .Release.Namespace $name' in template
    given = {"REDIS_PASSWORD": "chosen-password", "DSXCONNECT_AUTH__SERVER_KEY": "chosen-server-key"}
    chosen = by_kind(render(CORE, {"secrets": {"values": given}}), "Secret")["dsx-dsx-connect-secrets"]
    assert {key: chosen["stringData"][key] for key in given} == given


def test_core_redis_password_and_server_key_reach_every_core_pod() -> None:
    docs = render(CORE)
    redis = by_kind(docs, "StatefulSet")["dsx-dsx-connect-redis"]["spec"]["template"]["spec"]["containers"][0]
    assert redis["args"][redis["args"].index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    assert env_of(redis)["REDISCLI_AUTH"]["valueFrom"]["secretKeyRef"]["key"] == "REDIS_PASSWORD"
    core_pods = [(n, c) for n, c in containers(docs) if "redis" not in n and "dsxa" not in n]
    assert len(core_pods) == 5  # the API and the four workers
    for name, container in core_pods:
        env = env_of(container)
        assert (
            env["DSXCONNECT_REDIS_URL"]["value"] == "redis://:$(REDIS_PASSWORD)@dsx-dsx-connect-redis:6379/0"
        )
        assert not env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"].get("optional"), name
        server_key = env["DSXCONNECT_AUTH__SERVER_KEY"]["valueFrom"]["secretKeyRef"]
        assert server_key["key"] == "DSXCONNECT_AUTH__SERVER_KEY" and not server_key.get("optional"), name
    without_auth = render(CORE, {"auth": {"enabled": False}})
    assert (
        "DSXCONNECT_AUTH__SERVER_KEY"
        not in by_kind(without_auth, "Secret")["dsx-dsx-connect-secrets"]["stringData"]
    )


def test_core_network_policy_lets_only_the_core_reach_redis() -> None:
    """On by default (SPEC §8: connectors never reach Redis); off only where the CNI cannot enforce it."""
    assert yaml.safe_load((CORE / "values.yaml").read_text())["networkPolicy"]["enabled"] is True
    assert not by_kind(render(CORE, {"networkPolicy": {"enabled": False}}), "NetworkPolicy")
    docs = render(CORE)
    policy = by_kind(docs, "NetworkPolicy")["dsx-dsx-connect-redis"]
    redis = by_kind(docs, "StatefulSet")["dsx-dsx-connect-redis"]
    assert (
        policy["spec"]["podSelector"]["matchLabels"].items()
        <= redis["spec"]["template"]["metadata"]["labels"].items()
    )
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    [rule] = policy["spec"]["ingress"]
    [peer] = rule["from"]
    assert rule["ports"] == [{"protocol": "TCP", "port": "redis"}]

    def admitted(labels: dict[str, str]) -> bool:
        wanted = peer["podSelector"]
        if not wanted["matchLabels"].items() <= labels.items():
            return False
        return all(labels.get(e["key"]) in e["values"] for e in wanted["matchExpressions"])

    core = [d for d in by_kind(docs, "Deployment").values() if "dsxa" not in d["metadata"]["name"]]
    assert len(core) == 5 and all(admitted(d["spec"]["template"]["metadata"]["labels"]) for d in core)
    dsxa = by_kind(docs, "Deployment")["dsx-dsx-connect-dsxa-lite"]
    assert not admitted(dsxa["spec"]["template"]["metadata"]["labels"])
    connectors = render(CONNECTORS)
    for deployment in by_kind(connectors, "Deployment").values():
        assert not admitted(deployment["spec"]["template"]["metadata"]["labels"]), deployment["metadata"][
            "name"
        ]


def test_core_external_redis_comes_from_the_secret() -> None:
    docs = render(
        CORE, {"redis": {"enabled": False}, "externalRedis": {"url": f"rediss://:{SENTINEL}@cache:6380/0"}}
    )
    assert not by_kind(docs, "StatefulSet")
    assert by_kind(docs, "Secret")["dsx-dsx-connect-secrets"]["stringData"]["DSXCONNECT_REDIS_URL"].endswith(
        "cache:6380/0"
    )
    for _, container in containers(docs):
        if "dsxa" not in container["name"]:
            ref = env_of(container)["DSXCONNECT_REDIS_URL"]["valueFrom"]["secretKeyRef"]
            assert ref["key"] == "DSXCONNECT_REDIS_URL" and not ref.get("optional")
    assert "externalRedis.url" in render_error(CORE, {"redis": {"enabled": False}})


def core_pods_env(docs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """The environment of the API and every worker (what reads the results store)."""
    return {
        name: env_of(c) for name, c in containers(docs) if "dsxa" not in c["name"] and "redis" not in name
    }


def test_core_results_db_is_unset_by_default_and_never_in_the_configmap() -> None:
    docs = render(CORE)
    pods = core_pods_env(docs)
    assert len(pods) == 5  # the API and four workers
    for name, env in pods.items():
        ref = env["DSXCONNECT_RESULTS_DB"]["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"], ref["optional"]) == (
            "dsx-dsx-connect-secrets",
            "DSXCONNECT_RESULTS_DB",
            True,
        ), name
    assert "DSXCONNECT_RESULTS_DB" not in next(iter(by_kind(docs, "ConfigMap").values()))["data"]
    assert "DSXCONNECT_RESULTS_DB" not in by_kind(docs, "Secret")["dsx-dsx-connect-secrets"]["stringData"]


def test_core_results_db_url_goes_into_the_secret_and_reaches_every_core_pod() -> None:
    url = f"postgresql://dsx:{SENTINEL}@db.example:5432/dsx"
    docs = render(CORE, {"resultsDb": {"url": url}})
    assert by_kind(docs, "Secret")["dsx-dsx-connect-secrets"]["stringData"]["DSXCONNECT_RESULTS_DB"] == url
    for doc in docs:
        if doc["kind"] != "Secret":
            assert SENTINEL not in yaml.safe_dump(doc), doc["metadata"]["name"]
    for name, env in core_pods_env(docs).items():
        ref = env["DSXCONNECT_RESULTS_DB"]["valueFrom"]["secretKeyRef"]
        assert ref["key"] == "DSXCONNECT_RESULTS_DB" and not ref.get("optional"), name
    from dsx_connect.results.settings import ResultsBackend, ResultsDbSettings

    assert (
        ResultsDbSettings(url=url).backend is ResultsBackend.POSTGRESQL
    )  # the core accepts what the chart does


def test_core_results_db_from_an_existing_secret() -> None:
    """An operator-managed PostgreSQL's own Secret (CloudNativePG: <cluster>-app, key uri)."""
    docs = render(CORE, {"resultsDb": {"existingSecret": "results-app", "existingSecretKey": "uri"}})
    for name, env in core_pods_env(docs).items():
        ref = env["DSXCONNECT_RESULTS_DB"]["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == ("results-app", "uri") and not ref.get("optional"), name
    with_own_secret = render(CORE, {"secrets": {"existingSecret": "mine"}})
    for env in core_pods_env(with_own_secret).values():
        ref = env["DSXCONNECT_RESULTS_DB"]["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"], ref["optional"]) == ("mine", "DSXCONNECT_RESULTS_DB", True)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"resultsDb": {"url": "sqlite:////data/results.db"}},
            "resultsDb.url: expected redis, memory or postgresql",
        ),
        ({"resultsDb": {"url": f"mysql://u:{SENTINEL}@db/x"}}, 'got the scheme "mysql"'),
        ({"resultsDb": {"url": "postgresql://db/x", "existingSecret": "s"}}, "not both"),
        (
            {"resultsDb": {"url": "postgresql://db/x"}, "secrets": {"existingSecret": "mine"}},
            "put the URL in that Secret as DSXCONNECT_RESULTS_DB",
        ),
    ],
    ids=["sqlite", "unknown-scheme", "both", "own-secret"],
)
def test_core_results_db_refuses_what_the_core_could_not_use(values: dict[str, Any], message: str) -> None:
    error = render_error(CORE, values)
    assert message in error and SENTINEL not in error


def test_core_scanner_and_tls_need_their_settings() -> None:
    assert "scanner.url" in render_error(CORE, {"scanner": {"embedded": {"enabled": False}}})
    assert "tls.secretName" in render_error(CORE, {"tls": {"enabled": True}})
    docs = render(
        CORE, {"scanner": {"url": "https://dsxa.example.com/scan/binary/v2", "embedded": {"enabled": False}}}
    )
    config = next(iter(by_kind(docs, "ConfigMap").values()))
    assert config["data"]["DSXCONNECT_SCANNER__SCAN_BINARY_URL"] == "https://dsxa.example.com/scan/binary/v2"
    assert "dsx-dsx-connect-dsxa-lite" not in by_kind(docs, "Deployment")


def test_core_siem_settings() -> None:
    config = next(iter(by_kind(render(CORE), "ConfigMap").values()))["data"]
    assert "DSXCONNECT_SUPERLOG__ENABLED" not in config  # unset: the 1.x behaviour decides
    config = next(iter(by_kind(render(CORE, CORE_AUTH_TLS), "ConfigMap").values()))["data"]
    assert config["DSXCONNECT_SUPERLOG__ENABLED"] == "true"
    assert config["DSXCONNECT_SYSLOG__HOST"] == "syslog.example.com"
    assert config["DSXCONNECT_SYSLOG__PORT"] == "6514"
    assert config["DSXCONNECT_AUTH__ENABLED"] == "true"


# ---------------------------------------------------------------- connectors chart

TYPES = yaml.safe_load((CONNECTORS / "values.yaml").read_text())["types"]


def test_connectors_defaults_render_the_filesystem_connector() -> None:
    docs = render(CONNECTORS)
    assert set(by_kind(docs, "Deployment")) == set(by_kind(docs, "Service")) == {"dsx-filesystem"}
    deployment = by_kind(docs, "Deployment")["dsx-filesystem"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = env_of(container)
    assert env["DSXCONNECTOR_CONNECTOR_URL"]["value"] == "http://dsx-filesystem:8620/filesystem-connector"
    assert env["DSXCONNECTOR_DSX_CONNECT_URL"]["value"] == "http://dsx-connect-api:8586"
    assert env["DSXCONNECTOR_ASSET"]["value"] == "/app/scan_folder"
    assert (
        container["image"]
        == f"dsxconnect/filesystem-connector:{version_of('connectors/filesystem/version.py')}"
    )
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert deployment["spec"]["replicas"] == 1
    service = by_kind(docs, "Service")["dsx-filesystem"]
    assert service["spec"]["ports"][0]["port"] == 8620
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_connectors_one_deployment_and_service_per_entry() -> None:
    values: dict[str, Any] = {
        "connectors": {
            key: {"enabled": True}
            for key in ("aws-s3", "azure-blob-storage", "google-cloud-storage", "sharepoint")
        }
    }
    values["connectors"]["second-share"] = {"enabled": True, "type": "filesystem", "asset": "/data"}
    docs = render(CONNECTORS, values)
    deployments = by_kind(docs, "Deployment")
    assert (
        set(deployments)
        == set(by_kind(docs, "Service"))
        == {
            "dsx-filesystem",
            "dsx-aws-s3",
            "dsx-azure-blob-storage",
            "dsx-google-cloud-storage",
            "dsx-sharepoint",
            "dsx-second-share",
        }
    )
    for name, deployment in deployments.items():
        kind = deployment["metadata"]["labels"]["dsx-connect/connector-type"]
        port = SERVICE_PORTS[f"connectors/{kind}"]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["ports"][0]["containerPort"] == port
        url = env_of(container)["DSXCONNECTOR_CONNECTOR_URL"]["value"]
        assert url == f"http://{name}:{port}/{TYPES[kind]['route']}"
        version_file = REPO / "connectors" / kind / "version.py"
        tag = container["image"].rsplit(":", 1)[1]
        if version_file.exists():
            assert tag == version_of(f"connectors/{kind}/version.py"), name


@pytest.mark.parametrize("values", [None, CONNECTORS_AUTH_TLS], ids=["defaults", "auth-tls"])
def test_connectors_env_names_and_secrets(values: dict[str, Any] | None) -> None:
    docs = render(CONNECTORS, values)
    chart_values = yaml.safe_load((CONNECTORS / "values.yaml").read_text())
    allowed = connector_env_names() | {"GOOGLE_APPLICATION_CREDENTIALS", "AWS_DEFAULT_REGION"}
    allowed |= {key for kind in TYPES.values() for key in kind["secretKeys"]} | set(
        chart_values["commonSecretKeys"]
    )
    allowed |= {key for entry in chart_values["connectors"].values() for key in entry.get("env", {})}
    assert "DSXCONNECTOR_WEBHOOK__SECRET" in chart_values["commonSecretKeys"]  # a secret, never plain env
    for name, container in containers(docs):
        env = env_of(container)
        assert set(env) <= allowed, f"{name}: {sorted(set(env) - allowed)}"
        for var in chart_values["commonSecretKeys"]:
            assert env[var]["valueFrom"]["secretKeyRef"]["key"] == var
        for var, entry in env.items():
            if SECRET_NAME.search(var) or var.endswith(("HMAC_SECRET", "SECRET_ACCESS_KEY")):
                assert "value" not in entry and entry["valueFrom"]["secretKeyRef"], f"{name}: {var}"


def test_connectors_tls_and_secret_values() -> None:
    docs = render(CONNECTORS, CONNECTORS_AUTH_TLS)
    filesystem = by_kind(docs, "Deployment")["dsx-filesystem"]["spec"]["template"]["spec"]
    container = filesystem["containers"][0]
    env = env_of(container)
    assert env["DSXCONNECTOR_CONNECTOR_URL"]["value"].startswith("https://dsx-filesystem:8620/")
    assert env["DSXCONNECTOR_USE_TLS"]["value"] == "true"
    assert env["DSXCONNECTOR_CA_BUNDLE"]["value"] == "/etc/dsx-connect/ca/ca.crt"
    assert env["DSXCONNECTOR_DSX_CONNECT_URL"]["value"].startswith("https://")
    assert container["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert (
        env["DSXCONNECTOR_ENROLLMENT_TOKEN"]["valueFrom"]["secretKeyRef"]["name"]
        == "filesystem-connector-secrets"
    )
    assert not by_kind(docs, "Secret")  # existingSecret everywhere
    aws = by_kind(docs, "Deployment")["dsx-aws-s3"]["spec"]["template"]["spec"]["containers"][0]
    assert (
        env_of(aws)["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"]
        == "aws-s3-connector-secrets"
    )

    made = render(
        CONNECTORS,
        {"connectors": {"filesystem": {"secretValues": {"DSXCONNECTOR_ENROLLMENT_TOKEN": SENTINEL}}}},
    )
    for doc in made:
        if doc["kind"] != "Secret":
            assert SENTINEL not in yaml.safe_dump(doc)
    assert by_kind(made, "Secret")["dsx-filesystem"]["stringData"] == {
        "DSXCONNECTOR_ENROLLMENT_TOKEN": SENTINEL
    }


def test_connectors_refuse_bad_entries() -> None:
    assert "is not one of" in render_error(
        CONNECTORS, {"connectors": {"x": {"enabled": True, "type": "ftp", "asset": "a"}}}
    )
    assert "asset is empty" in render_error(
        CONNECTORS, {"connectors": {"aws-s3": {"enabled": True, "asset": ""}}}
    )
    assert "is a secret" in render_error(
        CONNECTORS, {"connectors": {"filesystem": {"env": {"DSXCONNECTOR_ENROLLMENT_TOKEN": "x"}}}}
    )
    assert "tls.secretName" in render_error(
        CONNECTORS, {"connectors": {"filesystem": {"tls": {"enabled": True}}}}
    )


def test_connectors_gcs_credentials_are_mounted() -> None:
    docs = render(
        CONNECTORS,
        {"connectors": {"google-cloud-storage": {"enabled": True, "credentialsSecret": "gcp-key"}}},
    )
    spec = by_kind(docs, "Deployment")["dsx-google-cloud-storage"]["spec"]["template"]["spec"]
    env = env_of(spec["containers"][0])
    mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    assert env["GOOGLE_APPLICATION_CREDENTIALS"]["value"] == f"{mounts['gcp-credentials']}/credentials.json"
    assert {v["name"]: v for v in spec["volumes"]}["gcp-credentials"]["secret"]["secretName"] == "gcp-key"


def test_examples_are_documented_in_the_bundle_docs() -> None:
    guide = (REPO / "docs" / "deployment.md").read_text()
    assert all(Path(p).name in guide or "helm/examples/" in guide for p in EXAMPLES.glob("*.yaml"))


# ---------------------------------------------------------------- the scanner choice (issue 17)

APPLIANCE = {
    "scanner": {
        "appliance": {"enabled": True, "applianceUrl": "https://console.example.com", "scannerId": "7"}
    },
    "secrets": {"values": {"DSXA_APPLIANCE_TOKEN": SENTINEL}},
}


def test_core_scanner_choice_appliance_runs_the_dsxa_scanner_and_the_core_uses_it() -> None:
    docs = render(CORE, APPLIANCE)
    deployments = by_kind(docs, "Deployment")
    assert "dsx-dsx-connect-dsxa-scanner" in deployments and "dsx-dsx-connect-dsxa-lite" not in deployments
    [(_, scanner)] = [(n, c) for n, c in containers(docs) if n == "dsx-dsx-connect-dsxa-scanner"]
    env = env_of(scanner)
    assert (env["APPLIANCE_URL"]["value"], env["SCANNER_ID"]["value"]) == ("https://console.example.com", "7")
    assert env["TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "DSXA_APPLIANCE_TOKEN"
    assert (
        scanner["image"] == "dsxconnect/dpa-rocky9:4.2.0.2176"
        and scanner["ports"][0]["containerPort"] == 5000
    )
    assert by_kind(docs, "Service")["dsx-dsx-connect-dsxa-scanner"]["spec"]["ports"][0]["port"] == 5000
    config = next(iter(by_kind(docs, "ConfigMap").values()))["data"]
    assert (
        config["DSXCONNECT_SCANNER__SCAN_BINARY_URL"]
        == "http://dsx-dsx-connect-dsxa-scanner:5000/scan/binary/v2"
    )
    assert SENTINEL not in json.dumps([d for d in docs if d["kind"] != "Secret"])
    for name, container in containers(docs):  # the appliance's token stays with the appliance
        assert name.endswith("dsxa-scanner") or "DSXA_APPLIANCE_TOKEN" not in json.dumps(container), name


def test_core_scanner_choice_order_and_required_appliance_settings() -> None:
    external = "https://dsxa.example.com/scan/binary/v2"
    docs = render(CORE, {**APPLIANCE, "scanner": {**APPLIANCE["scanner"], "url": external}})
    assert {"dsx-dsx-connect-dsxa-scanner", "dsx-dsx-connect-dsxa-lite"}.isdisjoint(
        by_kind(docs, "Deployment")
    )
    assert (
        next(iter(by_kind(docs, "ConfigMap").values()))["data"]["DSXCONNECT_SCANNER__SCAN_BINARY_URL"]
        == external
    )
    default = next(iter(by_kind(render(CORE), "ConfigMap").values()))["data"]
    assert (
        default["DSXCONNECT_SCANNER__SCAN_BINARY_URL"]
        == "http://dsx-dsx-connect-dsxa-lite:5000/scan/binary/v2"
    )
    assert "applianceUrl" in render_error(CORE, {"scanner": {"appliance": {"enabled": True}}})
    no_token = {"scanner": APPLIANCE["scanner"]}
    assert "DSXA_APPLIANCE_TOKEN" in render_error(CORE, no_token)


def test_core_appliance_pod_has_no_api_token_and_the_default_seccomp_profile() -> None:
    """The vendor's image runs as it expects, but needs no Kubernetes API token and gets RuntimeDefault."""
    deployment = by_kind(render(CORE, APPLIANCE), "Deployment")["dsx-dsx-connect-dsxa-scanner"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_core_with_the_appliance_lints_clean_and_notes_name_it() -> None:
    report = helm.lint(CORE, APPLIANCE, strict=True, kube_version="v1.29.0")
    assert report["errors"] == [] and [m for m in report["messages"] if m["severity"] >= 2] == [], report
    assert "the DSXA appliance of this release" in notes(CORE, APPLIANCE)


@pytest.mark.parametrize("persistent", [False, True], ids=["emptyDir", "pvc"])
def test_connectors_keep_their_key_file_on_the_identity_volume(persistent: bool) -> None:
    """DSXCONNECTOR_AUTH__KEY_FILE on a volume: a PVC with identity.persistence, else an emptyDir."""
    values: dict[str, Any] = {
        "identity": {"persistence": {"enabled": persistent, "storageClass": "fast"}},
        "connectors": {"aws-s3": {"enabled": True}},
    }
    docs = render(CONNECTORS, values)
    deployments = by_kind(docs, "Deployment")
    claims = by_kind(docs, "PersistentVolumeClaim")
    assert set(deployments) == {"dsx-filesystem", "dsx-aws-s3"}
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert env_of(container)["DSXCONNECTOR_AUTH__KEY_FILE"]["value"] == "/var/lib/dsx-connector/hmac.key"
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/var/lib/dsx-connector")
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        assert not mount.get("readOnly"), name
        if persistent:
            claim = claims[f"{name}-identity"]
            assert volume["persistentVolumeClaim"] == {"claimName": f"{name}-identity"}
            assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
            assert claim["spec"]["storageClassName"] == "fast"
            assert claim["spec"]["resources"]["requests"]["storage"]
        else:
            assert volume == {"name": mount["name"], "emptyDir": {}}
    assert set(claims) == ({f"{n}-identity" for n in deployments} if persistent else set())
    text = notes(CONNECTORS, values)
    if persistent:
        assert "PersistentVolumeClaim" in text
    else:
        assert "emptyDir" in text and "inv enrollment-token" in text


def test_connectors_identity_persistence_is_on_by_default() -> None:
    """A rollout (Recreate) or reschedule keeps the DSX-HMAC pair: with an emptyDir the new pod's
    fleet token gets 409 for its existing uuid and the connector is out until re-enrolled."""
    values = yaml.safe_load((CONNECTORS / "values.yaml").read_text())
    assert values["identity"]["persistence"]["enabled"] is True
    docs = render(CONNECTORS)
    claims = by_kind(docs, "PersistentVolumeClaim")
    assert set(claims) == {"dsx-filesystem-identity"}
    claim = claims["dsx-filesystem-identity"]
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert claim["spec"]["resources"]["requests"]["storage"] == "16Mi"
    assert "storageClassName" not in claim["spec"]  # the cluster's default
    pod = by_kind(docs, "Deployment")["dsx-filesystem"]["spec"]["template"]["spec"]
    identity = next(v for v in pod["volumes"] if v["name"] == "identity")
    assert identity["persistentVolumeClaim"] == {"claimName": "dsx-filesystem-identity"}
    assert "WARNING" not in notes(CONNECTORS)


def test_connectors_notes_warn_when_identity_persistence_is_off() -> None:
    text = notes(CONNECTORS, {"identity": {"persistence": {"enabled": False}}})
    warning = next(line for line in text.splitlines() if line.startswith("WARNING"))
    assert "identity.persistence.enabled=false" in warning
    assert "409" in text and "upgrade" in text


SENTINEL_URL = re.compile(r"(?:redis\+)?sentinel://(?:<[^>]*>|[^\s'\"`<])+")


def sentinel_urls(text: str) -> list[str]:
    """The ``redis+sentinel://`` URLs of a text, placeholders as <...> filled in."""
    return [re.sub(r"<[^>]+>", "pw", url) for url in SENTINEL_URL.findall(text)]


def test_the_sentinel_example_authenticates_from_the_existing_secret() -> None:
    """A Sentinel set-up with Redis and Sentinel passwords: the URL (it holds them) lives in the Secret
    of secrets.existingSecret, never in values; the Helm snippet of docs/reliability.md likewise."""
    from dsx_connect.redis_sentinel import parse_sentinel_url

    path = EXAMPLES / "dsx-connect-values-redis-sentinel.yaml"
    values = yaml.safe_load(path.read_text())
    assert values["redis"]["enabled"] is False
    assert not (values.get("externalRedis") or {}).get("url"), "a URL in values: no password, or a leak"
    secret = values["secrets"]["existingSecret"]
    assert secret
    urls = sentinel_urls(path.read_text())  # the kubectl command of its comment
    assert urls
    for url in urls:
        target = parse_sentinel_url(url)
        assert target.password and target.sentinel_password and target.master == "dsxmaster", url
    docs = render(CORE, values)
    assert not by_kind(docs, "Secret")  # the operator's, not the chart's
    for name, env in core_pods_env(docs).items():
        ref = env["DSXCONNECT_REDIS_URL"]["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == (secret, "DSXCONNECT_REDIS_URL"), name
    (config,) = by_kind(docs, "ConfigMap").values()
    assert config["data"]["DSXCONNECT_REDIS_WAIT_REPLICAS"] == "1"
    assert "sentinel://" not in json.dumps(docs)

    guide = (REPO / "docs" / "reliability.md").read_text()
    helm_part = guide[guide.index("Helm: `deploy/helm/examples/dsx-connect-values-redis-sentinel.yaml`") :]
    helm_part = helm_part[: helm_part.index("\n## ")]
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", helm_part, re.S)]
    chart_keys = set(yaml.safe_load((CORE / "values.yaml").read_text()))
    ours = [b for b in blocks if "secrets" in b or "env" in b]
    assert ours, "the snippet gives the dsx-connect chart's values"
    for block in ours:
        assert set(block) <= chart_keys, f"keys the chart does not have: {set(block) - chart_keys}"
        assert not (block.get("externalRedis") or {}).get("url")
        assert "DSXCONNECT_REDIS_URL" not in (block.get("env") or {})  # a secret: never a plain env value
    guide_urls = sentinel_urls(helm_part)
    assert guide_urls
    for url in guide_urls:
        target = parse_sentinel_url(url)
        assert target.password and target.sentinel_password, url
