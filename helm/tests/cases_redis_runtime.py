"""The proxy runs with the chart's Redis wiring against a real redis-server: the URL with its
password from the Secret (as the Deployment's env var), the seal keys at the mounted path."""

from __future__ import annotations

import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from cases_egress import egress_values
from cases_runtime import free_port, get, materialize, proxy_binary, wait_ready
from harness import API_KEY, REDIS, REDIS_URL_SECRET, Skip, case, one, render


class RedisServer:
    """A redis-server on a free loopback port that requires a password, with no persistence;
    stopped on exit."""

    def __init__(self, tmp: Path):
        if not (shutil.which("redis-server") and shutil.which("redis-cli")):
            raise Skip("redis-server and redis-cli are needed (Debian: apt-get install redis-server)")
        self.password = secrets.token_urlsafe(24)
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--requirepass", self.password, "--dir", str(tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while self.cli("PING") != "PONG":
            assert self.proc.poll() is None, "redis-server exited (port taken?)"
            assert time.monotonic() < deadline, "redis-server did not answer PING"
            time.sleep(0.05)

    def cli(self, *args: str) -> str:
        run = subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), "--no-auth-warning", "-a", self.password, *args],
            capture_output=True, text=True, timeout=5,
        )
        return run.stdout.strip()

    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}"

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def container_env(container: dict, secret_values: dict) -> dict:
    """The container's environment as the kubelet builds it: plain values, and secretKeyRefs
    looked up in secret_values {(secret, key): value}. A missing one fails, as the pod would."""
    env = {}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
            continue
        ref = e["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) in secret_values, f"env {e['name']} needs Secret {ref['name']} key {ref['key']}"
        env[e["name"]] = secret_values[(ref["name"], ref["key"])]
    return env


def metric(text: str, name: str, labels: str = "") -> float:
    m = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    assert m, f"{name}{labels} is not in /metrics"
    return float(m.group(1))


@case("the proxy serves the chart's Redis config: URL with password from the Secret env var, seal keys mounted, bindings looked up in Redis")
def _():
    binary = proxy_binary()
    if binary is None:
        raise Skip("no myinfo-proxy binary (cargo build, or set MYINFO_PROXY_BIN)")
    http_port, admin_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp)) as redis:
        values = egress_values("api-key", False, False, True, {
            "redis": REDIS["secret"],
            "ports": {"http": http_port, "admin": admin_port},
            "config": {
                "drainTimeoutSeconds": 3,
                # On loopback; no request here goes upstream.
                "upstreams": [{"kind": "myinfo-v4", "baseUrl": f"http://127.0.0.1:{free_port()}/com/v4"}],
            },
        })
        docs = render(values)
        c = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
        env = container_env(c, {(REDIS_URL_SECRET, "redis-url"): redis.url()})
        cfg = materialize(binary, docs, Path(tmp))
        assert redis.password not in cfg.read_text(), "the Redis password reached config.toml"
        log_path = Path(tmp) / "proxy.log"
        with open(log_path, "w+") as log:
            proc = subprocess.Popen([binary, "serve", "--config", cfg], stdout=log, stderr=subprocess.STDOUT,
                                    env={"PATH": "/usr/bin:/bin", **env})
            try:
                wait_ready(proc, admin_port, c["readinessProbe"]["httpGet"]["path"], log_path)
                # A token the proxy never bound: it must look in Redis (any replica may have bound
                # it) and answer that it is unknown, without calling the upstream.
                status, body = get(http_port, "/com/v4/person/S1234567A",
                                   {"X-Api-Key": API_KEY, "Authorization": "Bearer never-issued-token"})
                assert status == 401 and "AUTH_TOKEN_UNKNOWN" in body, (status, body)
                _, metrics = get(admin_port, "/metrics")
                # A binary whose `serve` builds no shared state from [redis] counts no Redis call
                # at all (then this case is skipped below, never passed).
                wired = "myinfo_proxy_redis_operations_total{" in metrics
                if wired:
                    ok = metric(metrics, "myinfo_proxy_redis_operations_total", '{operation="use_token",outcome="ok"}')
                    assert ok >= 1, "the token lookup did not reach Redis"
                    assert metric(metrics, "myinfo_proxy_redis_available") == 1
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=3 + 5) == 0, "the proxy did not exit 0 after SIGTERM"
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        assert redis.password not in log_path.read_text(), "the Redis password reached the log"
    if not wired:
        raise Skip("this myinfo-proxy's `serve` does not use [redis] yet (no Redis call counted): "
                   "the chart's wiring was checked up to the proxy's start")
