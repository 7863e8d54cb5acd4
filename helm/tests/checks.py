"""What an operator checks on rendered manifests: pod and container security, probes, grace
period, checksums, the key Secret, NetworkPolicy rules."""

from __future__ import annotations

import hashlib
import re

from harness import UID, seconds

KEY_MATERIAL = [
    re.compile(r"-----BEGIN"),
    re.compile(r"PRIVATE KEY"),
    re.compile(r'"d"\s*:'),  # the private member of a JWK
    re.compile(r'"kty"\s*:'),
    re.compile(r"_(pem|jwks)_env\b|\bsig_pem_file\b|\benc_pem_file\b"),
]


def assert_no_key_material(text: str) -> None:
    for pattern in KEY_MATERIAL:
        assert not pattern.search(text), (
            f"config holds key material or a key source other than the Secret file ({pattern.pattern})"
        )


def assert_container_security(c: dict) -> None:
    sc = c["securityContext"]
    assert sc.get("runAsNonRoot") is True, sc
    assert sc.get("runAsUser") == UID, sc
    assert sc.get("readOnlyRootFilesystem") is True, sc
    assert sc.get("allowPrivilegeEscalation") is False, sc
    assert sc.get("capabilities", {}).get("drop") == ["ALL"], sc
    assert sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", sc


def assert_pod_security(spec: dict) -> None:
    sc = spec["securityContext"]
    assert sc.get("runAsNonRoot") is True, sc
    assert sc.get("runAsUser") == UID, sc
    assert sc.get("fsGroup") == UID, f"the key file is 0440: the proxy reads it through fsGroup ({sc})"
    assert sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", sc


def port_number(container: dict, port) -> int:
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p["name"] == port:
            return p["containerPort"]
    raise AssertionError(f"container has no port named {port!r}")


def assert_probes(c: dict, config: dict) -> None:
    admin_port = int(config["admin"]["listen"].rsplit(":", 1)[1])
    live, ready = c["livenessProbe"]["httpGet"], c["readinessProbe"]["httpGet"]
    assert live["path"] == "/healthz", live
    assert ready["path"] == "/readyz", ready
    assert port_number(c, live["port"]) == admin_port, "liveness probe misses the admin listener"
    assert port_number(c, ready["port"]) == admin_port, "readiness probe misses the admin listener"
    assert config["admin"]["enabled"] is True
    # The kubelet probes through the pod IP: an admin listener on loopback would never answer.
    assert not config["admin"]["listen"].startswith("127."), config["admin"]


def assert_grace(spec: dict, c: dict, config: dict) -> None:
    drain = seconds(config["drain_timeout"])
    pre_stop = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    grace = spec["terminationGracePeriodSeconds"]
    assert grace > drain + pre_stop, f"terminationGracePeriodSeconds {grace} <= preStop {pre_stop} + drain {drain}"


def assert_checksums(pod_meta: dict, configmap: dict) -> None:
    ann = pod_meta.get("annotations", {})
    want = hashlib.sha256(configmap["data"]["config.toml"].encode()).hexdigest()
    assert ann.get("checksum/config") == want, "checksum/config is not the ConfigMap's hash"
    assert re.fullmatch(r"[0-9a-f]{64}", ann.get("checksum/secrets", "")), ann


def assert_keys_from_secret(spec: dict, c: dict, config: dict, secret: str, configmap: dict) -> None:
    volumes = {v["name"]: v for v in spec["volumes"]}
    key_volumes = [v for v in volumes.values() if v.get("secret", {}).get("secretName") == secret]
    assert len(key_volumes) == 1, f"no volume from Secret {secret}"
    kv = key_volumes[0]
    mount = next(m for m in c["volumeMounts"] if m["name"] == kv["name"])
    # subPath mounts never see Secret updates, and key rotation relies on them.
    assert "subPath" not in mount, "the key Secret is mounted with subPath: rotation would need a restart"
    assert mount.get("readOnly") is True
    (item,) = kv["secret"]["items"]
    assert config["keys"]["jwks_file"] == f"{mount['mountPath']}/{item['path']}", config["keys"]
    assert set(config["keys"]) <= {"jwks_file", "reload_interval", "active_sig_kid"}, config["keys"]
    cfg_mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/etc/myinfo-proxy/config.toml")
    assert volumes[cfg_mount["name"]]["configMap"]["name"] == configmap["metadata"]["name"]
    assert c["args"] == ["serve", "--config", "/etc/myinfo-proxy/config.toml"], c["args"]


def proxy_container(containers: list[dict]) -> dict:
    found = [c for c in containers if c["name"] == "myinfo-proxy"]
    assert len(found) == 1, [c["name"] for c in containers]
    return found[0]


def check_network_policy(np: dict, pod_labels: dict, peers: list, cidrs: list, redis: dict | None = None) -> None:
    """The policy's rules; `redis` is the expected egress rule to Redis ({ports, to}), or None
    when there must be none."""
    spec = np["spec"]
    assert spec["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    for rule in spec["ingress"]:
        # An empty or missing `from` admits every pod of the cluster.
        assert rule.get("from"), f"ingress rule open to everyone: {rule}"
    main = [r for r in spec["ingress"] if r["ports"] == [{"port": 8080, "protocol": "TCP"}]]
    assert len(main) == 1 and main[0]["from"] == peers, spec["ingress"]
    admin = [r for r in spec["ingress"] if r["ports"] == [{"port": 9090, "protocol": "TCP"}]]
    assert len(admin) == 1 and "namespaceSelector" in admin[0]["from"][0], spec["ingress"]
    dns, https, *more = spec["egress"]
    assert sorted((p["port"], p["protocol"]) for p in dns["ports"]) == [(53, "TCP"), (53, "UDP")], dns
    assert [t["ipBlock"]["cidr"] for t in https["to"]] == cidrs, https
    assert https["ports"] == [{"port": 443, "protocol": "TCP"}], https
    if redis is None:
        assert not more, f"egress rules beyond DNS and Singpass: {more}"
    else:
        (to_redis,) = more
        assert to_redis["ports"] == [{"port": p, "protocol": "TCP"} for p in redis["ports"]], to_redis
        # No `to` is any destination on those ports; otherwise exactly the peers given.
        assert to_redis.get("to", []) == redis["to"], to_redis


REDIS_URL_ENV = "MYINFO_PROXY_REDIS_URL"
REDIS_KEYS = {"url", "url_env", "key_prefix", "timeout", "fallback_replicas", "seal_keys_file"}


def assert_redis_wiring(spec: dict, c: dict, config: dict, values: dict, fallback: int | None) -> None:
    """[redis] in config.toml, the URL's env var and the seal-key volume, as the (effective)
    values ask: all of it when redis.url or redis.existingSecret is set, none of it otherwise."""
    r = values["redis"]
    env = {e["name"]: e for e in c.get("env", [])}
    seal_mounts = [m for m in c["volumeMounts"] if m["mountPath"].startswith("/etc/myinfo-proxy/seal")]
    if not (r["url"] or r["existingSecret"]):
        assert "redis" not in config, config["redis"]
        assert REDIS_URL_ENV not in env and not seal_mounts, (env, seal_mounts)
        return
    red = config["redis"]
    assert set(red) <= REDIS_KEYS, f"[redis] has {set(red) - REDIS_KEYS}: seal keys come only from the Secret file"
    if r["url"]:
        assert red["url"] == r["url"] and "url_env" not in red, red
        assert REDIS_URL_ENV not in env, env
    else:
        assert "url" not in red and red["url_env"] == REDIS_URL_ENV, red
        ref = env[REDIS_URL_ENV]
        assert "value" not in ref, "the Redis URL (with its password) must come from the Secret"
        assert ref["valueFrom"]["secretKeyRef"] == {"name": r["existingSecret"], "key": r["existingSecretKey"]}, ref
    assert red["key_prefix"] == r["keyPrefix"] and red["timeout"] == r["timeout"], red
    assert red["fallback_replicas"] == fallback, f"fallback_replicas {red['fallback_replicas']}, expected {fallback}"
    (volume,) = [v for v in spec["volumes"] if v.get("secret", {}).get("secretName") == r["sealKeys"]["existingSecret"]]
    (mount,) = seal_mounts
    assert mount["name"] == volume["name"] and mount.get("readOnly") is True, mount
    assert "subPath" not in mount, mount
    (item,) = volume["secret"]["items"]
    assert item["key"] == r["sealKeys"]["key"], item
    assert red["seal_keys_file"] == f"{mount['mountPath']}/{item['path']}", red


def assert_lint_clean(report: dict) -> None:
    # Severity 1 is info (e.g. "icon is recommended"); warnings (2) and errors (3) fail.
    bad = [m for m in report["messages"] if m["severity"] >= 2]
    assert not bad and not report["errors"], bad or report["errors"]
