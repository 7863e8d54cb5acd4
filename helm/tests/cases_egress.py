"""Egress mode: every option combination, and the computed values (image, checksums, grace)."""

from __future__ import annotations

from itertools import product

import yaml

from checks import (
    assert_checksums, assert_container_security, assert_grace, assert_keys_from_secret,
    assert_no_key_material, assert_pod_security, assert_probes, assert_redis_wiring,
    check_network_policy, port_number, proxy_container,
)
from harness import (
    API_KEY_HASH, APP_PEERS, AUTH, BASE, CHART, EGRESS_EXAMPLE, EGRESS_REDIS_EXAMPLE, SINGPASS_CIDRS,
    case, config_of, effective, kinds, merge, one, render, validate_k8s,
)


def egress_values(auth: str, hpa: bool, monitor: bool, netpol: bool, extra: dict | None = None) -> dict:
    return merge(
        BASE,
        {
            "mode": "egress",
            "inbound": AUTH[auth],
            "autoscaling": {"enabled": hpa},
            "serviceMonitor": {"enabled": monitor, "labels": {"release": "prom"}},
            "networkPolicy": {"enabled": netpol, "ingressFrom": APP_PEERS, "egressCIDRs": SINGPASS_CIDRS},
        },
        extra or {},
    )


def expected_fallback(values: dict) -> int:
    """fallback_replicas as the chart README promises it: redis.fallbackReplicas, else the most
    replicas that can run (maxReplicas with the HPA, else replicaCount) plus the surge pod."""
    v = effective(values)
    if v["redis"]["fallbackReplicas"] is not None:
        return v["redis"]["fallbackReplicas"]
    hpa = v["autoscaling"]
    return (hpa["maxReplicas"] if hpa["enabled"] else v["replicaCount"]) + 1


def check_egress(docs, values: dict) -> None:
    """The egress manifests against what the values ask for."""
    redis = effective(values)["redis"]
    redis_on = bool(redis["url"] or redis["existingSecret"])
    hpa = values.get("autoscaling", {}).get("enabled", False)
    monitor = values.get("serviceMonitor", {}).get("enabled", False)
    netpol = values.get("networkPolicy", {}).get("enabled", True)
    hashes = values["inbound"].get("apiKeySha256", [])
    mtls_secret = values["inbound"].get("mtls", {}).get("existingSecret")

    validate_k8s(docs)
    expected = {"ConfigMap", "Deployment", "Service", "ServiceAccount", "PodDisruptionBudget"}
    expected |= {"HorizontalPodAutoscaler"} if hpa else set()
    expected |= {"ServiceMonitor"} if monitor else set()
    expected |= {"NetworkPolicy"} if netpol else set()
    assert set(kinds(docs)) == expected and len(docs) == len(expected), kinds(docs)

    text, config = config_of(docs)
    assert_no_key_material(text)
    assert config["listen"] == "0.0.0.0:8080", config["listen"]
    assert config["log"]["format"] == "json"
    inbound = config["inbound"]
    assert inbound.get("api_key_sha256", []) == hashes, inbound
    assert inbound["allow_unauthenticated"] is values["inbound"].get("allowUnauthenticated", False)
    assert ("client_ca_file" in inbound) == bool(mtls_secret), inbound

    dep = one(docs, "Deployment")
    pod = dep["spec"]["template"]
    spec = pod["spec"]
    c = proxy_container(spec["containers"])
    configmap = one(docs, "ConfigMap")
    assert_pod_security(spec)
    assert_container_security(c)
    assert_probes(c, config)
    assert_grace(spec, c, config)
    assert_checksums(pod["metadata"], configmap)
    assert_keys_from_secret(spec, c, config, values["keys"]["existingSecret"], configmap)
    assert spec["automountServiceAccountToken"] is False
    assert c["resources"]["requests"] and c["resources"]["limits"], c["resources"]
    if mtls_secret:
        tls = next(v for v in spec["volumes"] if v.get("secret", {}).get("secretName") == mtls_secret)
        assert {i["key"] for i in tls["secret"]["items"]} == {"tls.crt", "tls.key", "ca.crt"}
        mount = next(m for m in c["volumeMounts"] if m["name"] == tls["name"])
        assert inbound["tls_cert_file"] == f"{mount['mountPath']}/tls.crt"
        assert inbound["client_ca_file"] == f"{mount['mountPath']}/ca.crt"
    assert ("replicas" in dep["spec"]) != hpa, "replicas must be left to the HPA exactly when it is on"
    assert_redis_wiring(spec, c, config, effective(values), expected_fallback(values) if redis_on else None)

    svc = one(docs, "Service")
    # Without Redis a client must stay on the replica that holds its bindings; with Redis any
    # replica serves it, and affinity is off unless asked for.
    affinity = values.get("service", {}).get("sessionAffinity") or ("None" if redis_on else "ClientIP")
    assert svc["spec"]["sessionAffinity"] == affinity, svc["spec"]
    if affinity == "ClientIP":
        # A FAPI login spans login_ttl (10m) + the token's 30m on one replica.
        assert svc["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] >= 2400
    else:
        assert "sessionAffinityConfig" not in svc["spec"], svc["spec"]
    pod_labels = pod["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items(), "Service selects no proxy pod"
    for p in svc["spec"]["ports"]:
        port_number(c, p["targetPort"])
    main_port = next(p for p in svc["spec"]["ports"] if p["port"] == 8080)
    assert main_port["name"] == ("https" if mtls_secret else "http"), main_port

    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()

    if hpa:
        ref = one(docs, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
        assert (ref["kind"], ref["name"]) == ("Deployment", dep["metadata"]["name"]), ref
    if monitor:
        sm = one(docs, "ServiceMonitor")
        assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
        assert "admin" in {p["name"] for p in svc["spec"]["ports"]}
        assert sm["metadata"]["labels"].items() >= values["serviceMonitor"].get("labels", {}).items()
    if netpol:
        np = values["networkPolicy"]
        check_network_policy(
            one(docs, "NetworkPolicy"), pod_labels, np["ingressFrom"], np["egressCIDRs"],
            redis["networkPolicy"] if redis_on else None,
        )


for _auth, _hpa, _sm, _np in product(AUTH, (False, True), (False, True), (False, True)):

    def _egress_case(auth=_auth, hpa=_hpa, sm=_sm, np=_np):
        values = egress_values(auth, hpa, sm, np)
        check_egress(render(values), values)

    case(f"egress auth={_auth} hpa={_hpa} serviceMonitor={_sm} networkPolicy={_np}")(_egress_case)


@case("egress with every option: extra CA, route overrides, global quota, IPv6, digest")
def _():
    values = egress_values(
        "api-key",
        True,
        True,
        True,
        {
            "inbound": {"mtls": {"existingSecret": "myinfo-proxy-tls"}},
            "ports": {"address": "::"},
            "image": {"digest": "sha256:" + "ab" * 32},
            "config": {
                "tls": {"roots": "both", "extraCaConfigMap": {"name": "corp-ca", "key": "bundle.pem"}},
                "rateLimit": {"global": {"perSecond": 50, "burst": 60}},
                "breaker": {"failures": 3, "openFor": "2s"},
                "listener": {"main": {"maxConnections": 1000, "headerReadTimeout": "5s"}},
                "upstreams": [
                    {
                        "name": "v4",
                        "kind": "myinfo-v4",
                        "baseUrl": "https://test.api.myinfo.gov.sg/com/v4",
                        "jwksUrl": "https://test.authorise.singpass.gov.sg/.well-known/keys.json",
                        "routes": {"person": {"decrypt": True, "retry": {"maxRetries": 0}}},
                    },
                    {
                        "kind": "singpass-fapi",
                        "issuer": "https://stg-id.singpass.gov.sg/fapi",
                        "loginTtl": "5m",
                        "routes": {"token": {"rateLimit": {"perSecond": 5, "burst": 5},
                                             "timeouts": {"attempt": "20s", "overall": "40s"}}},
                    },
                ],
            },
        },
    )
    docs = render(values)
    validate_k8s(docs)
    _, config = config_of(docs)
    assert config["listen"] == "[::]:8080" and config["admin"]["listen"] == "[::]:9090"
    assert config["inbound"]["api_key_sha256"] == [API_KEY_HASH] and "client_ca_file" in config["inbound"]
    assert config["tls"] == {"roots": "both", "extra_ca_file": "/etc/myinfo-proxy/extra-ca/bundle.pem"}
    assert config["rate_limit"]["global"] == {"per_second": 50, "burst": 60}
    v4, fapi = config["upstream"]
    assert v4["routes"]["person"] == {"decrypt": True, "retry": {"max_retries": 0}}, v4
    assert fapi["login_ttl"] == "5m" and fapi["routes"]["token"]["rate_limit"] == {"per_second": 5, "burst": 5}
    assert fapi["routes"]["token"]["timeouts"] == {"attempt": "20s", "overall": "40s"}, fapi
    # Values given override the chart's defaults key by key; the rest keep the proxy's defaults.
    assert config["breaker"] == {"enabled": True, "failures": 3, "open_for": "2s", "max_open_for": "60s"}
    assert config["listener"]["main"] == {
        "header_read_timeout": "5s", "body_timeout": "15s", "idle_timeout": "60s", "max_connections": 1000,
    }
    assert config["listener"]["admin"]["max_connections"] == 64
    c = proxy_container(one(docs, "Deployment")["spec"]["template"]["spec"]["containers"])
    assert c["image"] == "ghcr.io/myinfo-proxy/myinfo-proxy@sha256:" + "ab" * 32
    assert "/etc/myinfo-proxy/extra-ca" in {m["mountPath"] for m in c["volumeMounts"]}


@case("helm/examples/egress-values.yaml and egress-redis-values.yaml render and validate")
def _():
    for example in (EGRESS_EXAMPLE, EGRESS_REDIS_EXAMPLE):
        values = yaml.safe_load(example.read_text())
        check_egress(render(values, release="myinfo-proxy", namespace="myinfo"), values)


@case("default image tag is the chart's appVersion")
def _():
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    docs = render(egress_values("api-key", False, False, False))
    c = proxy_container(one(docs, "Deployment")["spec"]["template"]["spec"]["containers"])
    assert c["image"] == f"ghcr.io/myinfo-proxy/myinfo-proxy:{app_version}", c["image"]


@case("a config change changes checksum/config (pods roll); a Secret rename changes checksum/secrets")
def _():
    def annotations(extra):
        docs = render(egress_values("api-key", False, False, False, extra))
        return one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]

    base = annotations({})
    changed = annotations({"config": {"timeouts": {"attempt": "7s"}}})
    renamed = annotations({"keys": {"existingSecret": "keys-v2"}})
    assert base["checksum/config"] != changed["checksum/config"]
    assert base["checksum/secrets"] == changed["checksum/secrets"]
    assert base["checksum/secrets"] != renamed["checksum/secrets"]


@case("terminationGracePeriodSeconds follows drainTimeoutSeconds and preStop")
def _():
    longer = {"config": {"drainTimeoutSeconds": 45}, "preStopSleepSeconds": 3}
    docs = render(egress_values("api-key", False, False, False, longer))
    spec = one(docs, "Deployment")["spec"]["template"]["spec"]
    _, config = config_of(docs)
    assert config["drain_timeout"] == "45s"
    assert spec["terminationGracePeriodSeconds"] == 58, spec["terminationGracePeriodSeconds"]
    docs = render(egress_values("api-key", False, False, False, {"terminationGracePeriodSeconds": 90}))
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 90
