"""The core chart's optional KEDA ScaledObject: scan workers scaled on the length of scan_request_queue,
the Redis password by reference to the chart's Secret, and refusals of contradictory values."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.test_helm import CORE, QUEUES, SENTINEL, by_kind, render, render_error

pytestmark = pytest.mark.unit

SCALED = "dsx-dsx-connect-worker-scan"


#: the KEDA operator's namespace, let in to Redis past the default NetworkPolicy
KEDA_NS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}}}


def keda(**values: Any) -> dict[str, Any]:
    return {"keda": {"enabled": True, **values}, "networkPolicy": {"extraRedisPeers": [KEDA_NS]}}


def test_keda_is_off_by_default() -> None:
    docs = render(CORE)
    assert not by_kind(docs, "ScaledObject")
    assert not by_kind(docs, "TriggerAuthentication")


def test_scaled_object_targets_the_scan_workers_on_the_redis_list_of_their_queue() -> None:
    docs = render(
        CORE,
        {**keda(maxReplicaCount=12, listLength=500), "secrets": {"values": {"REDIS_PASSWORD": SENTINEL}}},
    )
    scaled = by_kind(docs, "ScaledObject")[SCALED]
    deployments = by_kind(docs, "Deployment")
    target = scaled["spec"]["scaleTargetRef"]["name"]
    assert target in deployments
    assert deployments[target]["metadata"]["labels"]["dsx-connect/queue"] == QUEUES["scan"]
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (1, 12)

    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis"
    meta = trigger["metadata"]
    assert meta["listName"] == QUEUES["scan"]
    assert meta["listLength"] == "500"
    assert meta["databaseIndex"] == "0"
    redis_services = by_kind(docs, "Service")
    host, port = meta["address"].split(":")
    assert host == "dsx-dsx-connect-redis.scan.svc"
    assert "dsx-dsx-connect-redis" in redis_services
    assert int(port) == redis_services["dsx-dsx-connect-redis"]["spec"]["ports"][0]["port"]

    # the password by reference to the chart's Secret, never its value
    auth = by_kind(docs, "TriggerAuthentication")[trigger["authenticationRef"]["name"]]
    (ref,) = auth["spec"]["secretTargetRef"]
    secrets = by_kind(docs, "Secret")
    assert ref == {"parameter": "password", "name": "dsx-dsx-connect-secrets", "key": "REDIS_PASSWORD"}
    assert ref["name"] in secrets and "REDIS_PASSWORD" in secrets[ref["name"]]["stringData"]
    assert SENTINEL not in str(scaled) + str(auth)


def test_an_existing_secret_is_referenced_by_its_name() -> None:
    docs = render(CORE, {**keda(), "secrets": {"existingSecret": "ops-dsx"}})
    (auth,) = by_kind(docs, "TriggerAuthentication").values()
    assert auth["spec"]["secretTargetRef"][0]["name"] == "ops-dsx"


def test_redis_without_a_password_needs_no_trigger_authentication() -> None:
    docs = render(CORE, {**keda(), "redis": {"auth": {"enabled": False}}})
    assert not by_kind(docs, "TriggerAuthentication")
    (trigger,) = by_kind(docs, "ScaledObject")[SCALED]["spec"]["triggers"]
    assert "authenticationRef" not in trigger


def test_external_redis_needs_its_address() -> None:
    values = {**keda(), "redis": {"enabled": False}, "externalRedis": {"url": "redis://r:6379/0"}}
    assert "keda.redisAddress" in render_error(CORE, values)
    values["keda"] = {"enabled": True, "redisAddress": "r.example:6380", "redisPasswordKey": "REDIS_PW"}
    docs = render(CORE, values)
    (trigger,) = by_kind(docs, "ScaledObject")[SCALED]["spec"]["triggers"]
    assert trigger["metadata"]["address"] == "r.example:6380"
    (auth,) = by_kind(docs, "TriggerAuthentication").values()
    assert auth["spec"]["secretTargetRef"][0]["key"] == "REDIS_PW"


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"workers": {"scan": {"autoscaling": {"enabled": True}}}}, "workers.scan.autoscaling.enabled"),
        ({"workers": {"scan": {"enabled": False}}}, "workers.scan.enabled"),
        ({"keda": {"enabled": True, "minReplicaCount": 4, "maxReplicaCount": 2}}, "keda.maxReplicaCount"),
        ({"keda": {"enabled": True, "listLength": 0}}, "keda.listLength"),
    ],
    ids=["two-hpas", "no-scan-workers", "max-below-min", "zero-list-length"],
)
def test_contradictory_values_are_refused_by_name(values: dict[str, Any], named: str) -> None:
    assert named in render_error(CORE, {**keda(), **values})


def test_with_a_network_policy_the_keda_operator_must_be_let_in_to_redis() -> None:
    """The NetworkPolicy is on by default: keda.enabled alone is refused, naming the value to set."""
    assert "networkPolicy.extraRedisPeers" in render_error(CORE, {"keda": {"enabled": True}})
    values: dict[str, Any] = {**keda(), "networkPolicy": {"enabled": True}}
    assert "networkPolicy.extraRedisPeers" in render_error(CORE, values)
    values["networkPolicy"]["extraRedisPeers"] = [KEDA_NS]
    docs = render(CORE, values)
    (policy,) = by_kind(docs, "NetworkPolicy").values()
    assert KEDA_NS in policy["spec"]["ingress"][0]["from"]
    assert by_kind(docs, "ScaledObject")
    # without the policy (a CNI that does not enforce it) nothing needs letting in
    assert by_kind(
        render(CORE, {"keda": {"enabled": True}, "networkPolicy": {"enabled": False}}), "ScaledObject"
    )


def test_an_upgrade_leaves_the_scan_workers_replicas_to_keda() -> None:
    """No spec.replicas on the Deployment KEDA's HPA scales: else every helm upgrade resets it."""
    deployments = by_kind(render(CORE, keda(minReplicaCount=2)), "Deployment")
    assert "replicas" not in deployments[SCALED]["spec"]
    for name in ("action", "result", "notify"):  # not scaled by KEDA: their count stays the chart's
        assert deployments[f"dsx-dsx-connect-worker-{name}"]["spec"]["replicas"] >= 1, name
    assert by_kind(render(CORE), "Deployment")[SCALED]["spec"]["replicas"] >= 1  # KEDA off
