"""Egress mode with Redis: both ways to name it, fallback_replicas, session affinity, the
NetworkPolicy's rule to Redis, NOTES.txt warnings, and the refusal in sidecar mode."""

from __future__ import annotations

import tempfile
from itertools import product
from pathlib import Path

import helm_python as helm

from cases_egress import check_egress, egress_values, expected_fallback
from cases_sidecar import vendored_example
from harness import (
    BASE, REDIS, REDIS_URL_SECRET, SEAL_SECRET, case, config_of, merge, one, render, render_notes,
)


def with_redis(form: str, extra: dict | None = None, hpa: bool = False, netpol: bool = True) -> dict:
    return egress_values("api-key", hpa, False, netpol, merge({"redis": REDIS[form]}, extra or {}))


for _form, _hpa, _np in product(REDIS, (False, True), (False, True)):

    def _redis_case(form=_form, hpa=_hpa, np=_np):
        values = with_redis(form, hpa=hpa, netpol=np)
        check_egress(render(values), values)

    case(f"egress redis={_form} hpa={_hpa} networkPolicy={_np}")(_redis_case)


@case("redis defaults: key prefix, 50ms, fallback = replicaCount + 1, no affinity, port 6379 to anywhere")
def _():
    docs = render(with_redis("url"))
    _, config = config_of(docs)
    assert config["redis"] == {
        "url": REDIS["url"]["url"],
        "key_prefix": "myinfo-proxy",
        "timeout": "50ms",
        # replicaCount 2, and one more pod while a rollout surges.
        "fallback_replicas": 3,
        "seal_keys_file": "/etc/myinfo-proxy/seal/seal-keys",
    }, config["redis"]
    svc = one(docs, "Service")["spec"]
    assert svc["sessionAffinity"] == "None" and "sessionAffinityConfig" not in svc, svc
    rules = one(docs, "NetworkPolicy")["spec"]["egress"]
    assert rules[-1] == {"ports": [{"port": 6379, "protocol": "TCP"}]}, rules[-1]


@case("redis Secret keys, key prefix and timeout reach the pod and config.toml as given")
def _():
    extra = {"redis": {"existingSecretKey": "url", "sealKeys": {"key": "keyring.txt"},
                       "keyPrefix": "stg-shop:v1", "timeout": "120ms"}}
    values = with_redis("secret", extra)
    docs = render(values)
    check_egress(docs, values)
    _, config = config_of(docs)
    assert config["redis"]["seal_keys_file"] == "/etc/myinfo-proxy/seal/keyring.txt", config["redis"]
    assert (config["redis"]["key_prefix"], config["redis"]["timeout"]) == ("stg-shop:v1", "120ms")


@case("fallback_replicas follows replicaCount, the HPA's maxReplicas, or redis.fallbackReplicas")
def _():
    for extra, hpa, want in (
        ({"replicaCount": 4}, False, 5),
        ({"replicaCount": 4, "autoscaling": {"maxReplicas": 9}}, True, 10),
        ({"replicaCount": 4, "redis": {"fallbackReplicas": 12}}, False, 12),
        ({"autoscaling": {"maxReplicas": 9}, "redis": {"fallbackReplicas": 2}}, True, 2),
    ):
        values = with_redis("secret", extra, hpa=hpa)
        assert expected_fallback(values) == want
        _, config = config_of(render(values))
        assert config["redis"]["fallback_replicas"] == want, (extra, config["redis"])


@case("with Redis, ClientIP affinity is still there when asked for; without it, None can be asked for")
def _():
    docs = render(with_redis("url", {"service": {"sessionAffinity": "ClientIP", "sessionAffinityTimeoutSeconds": 600}}))
    svc = one(docs, "Service")["spec"]
    assert svc["sessionAffinity"] == "ClientIP", svc
    assert svc["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] == 600, svc
    values = egress_values("api-key", False, False, False, {"service": {"sessionAffinity": "None"}})
    assert one(render(values), "Service")["spec"]["sessionAffinity"] == "None"
    assert "consecutive calls of one login land on different replicas" in render_notes(values)


@case("the NetworkPolicy lets the proxy reach Redis where redis.networkPolicy says, and only with Redis")
def _():
    peers = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "redis"}},
              "podSelector": {"matchLabels": {"app.kubernetes.io/name": "redis"}}}]
    managed = [{"ipBlock": {"cidr": "10.20.0.0/24"}}]
    for extra in (
        {"redis": {"networkPolicy": {"to": peers}}},
        {"redis": {"url": "rediss://cache.internal.example:6380/0", "networkPolicy": {"ports": [6380], "to": managed}}},
    ):
        values = with_redis("url", extra)
        check_egress(render(values), values)
    without = egress_values("api-key", False, False, True)
    assert len(one(render(without), "NetworkPolicy")["spec"]["egress"]) == 2


@case("NOTES.txt warns of per-replica bindings and quotas without Redis when replicaCount > 1 or the HPA is on")
def _():
    def notes(values):
        return render_notes(values)

    warned = "without Redis bindings and quotas are per replica"
    two = notes(egress_values("api-key", False, False, True))
    assert warned in two and "replicaCount is 2" in two and "up to 2 times" in two, two
    hpa = notes(egress_values("api-key", True, False, True, {"replicaCount": 1}))
    assert warned in hpa and "the HPA may run up to 5 replicas" in hpa, hpa
    single = notes(egress_values("api-key", False, False, True, {"replicaCount": 1}))
    assert "WARNING" not in single and "sessionAffinity: ClientIP" in single, single
    for form in REDIS:
        shared = notes(with_redis(form, {"replicaCount": 3}, hpa=True))
        assert "WARNING" not in shared, shared
        assert "Shared state: Redis" in shared and "sessionAffinity: None" in shared, shared
        assert "1/6 of the quota" in shared, shared
    assert REDIS["url"]["url"] in notes(with_redis("url"))
    assert REDIS_URL_SECRET in notes(with_redis("secret"))
    low = notes(with_redis("url", {"replicaCount": 3, "redis": {"fallbackReplicas": 2}}))
    assert "WARNING: redis.fallbackReplicas (2) is below the replicas that may run" in low, low


@case("Redis changes checksum/secrets (pods roll when its Secrets are renamed)")
def _():
    def secrets(values):
        return one(render(values), "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/secrets"]

    without = secrets(egress_values("api-key", False, False, True))
    url = secrets(with_redis("url"))
    secret = secrets(with_redis("secret"))
    renamed = secrets(with_redis("secret", {"redis": {"sealKeys": {"existingSecret": SEAL_SECRET + "-v2"}}}))
    other_url = secrets(with_redis("secret", {"redis": {"existingSecretKey": "url"}}))
    assert len({without, url, secret, renamed, other_url}) == 5


@case("an app chart's sidecar refuses redis values rather than ignoring them")
def _():
    # (cases_values checks the same refusal of this chart's own values, schema and templates.)
    for redis in (REDIS["url"], REDIS["secret"]):
        values = {"myinfo-proxy": merge(BASE, {"redis": redis})}
        with tempfile.TemporaryDirectory() as tmp:
            app = vendored_example(Path(tmp), values)
            try:
                render({}, chart=app, release="shop")
            except helm.HelmError as e:
                assert "redis" in str(e), str(e)
            else:
                raise AssertionError(f"the sidecar rendered with redis {redis}")
