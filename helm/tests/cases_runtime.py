"""The proxy accepts what the chart renders (check-config), and the image fits the chart."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from cases_egress import egress_values
from cases_sidecar import vendored_example
from harness import (
    API_KEY, API_KEY_HASH, BASE, EGRESS_EXAMPLE, EGRESS_REDIS_EXAMPLE, REDIS, ROOT, Skip, case,
    config_of, merge, one, render,
)


def proxy_binary() -> Path | None:
    env = os.environ.get("MYINFO_PROXY_BIN")
    if env:
        path = Path(env)
        assert path.is_file(), f"MYINFO_PROXY_BIN={env} does not exist"
        return path
    for build in ("debug", "release"):
        path = ROOT / "target" / build / "myinfo-proxy"
        if path.is_file():
            return path
    return None


def materialize(binary: Path, docs, tmp: Path) -> Path:
    """The rendered config.toml with the chart's mount paths moved under tmp, and those paths
    filled as the cluster would: keys from keygen, TLS files from openssl. Returns its path."""
    etc = tmp / "etc" / "myinfo-proxy"
    text, config = config_of(docs)
    text = text.replace("/etc/myinfo-proxy/", f"{etc}/")
    keys_dir = Path(config["keys"]["jwks_file"].replace("/etc/myinfo-proxy/", f"{etc}/")).parent
    subprocess.run([binary, "keygen", "--out", keys_dir], check=True, capture_output=True)
    wanted = Path(config["keys"]["jwks_file"]).name
    if wanted != "private-jwks.json":
        (keys_dir / "private-jwks.json").rename(keys_dir / wanted)
    seal = config.get("redis", {}).get("seal_keys_file")
    if seal:
        # What the seal-key Secret holds: a keyring of keys from `myinfo-proxy seal-key`.
        keyring = [subprocess.run([binary, "seal-key"], check=True, capture_output=True, text=True).stdout.strip()
                   for _ in range(2)]
        dest = Path(seal.replace("/etc/myinfo-proxy/", f"{etc}/"))
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text("\n".join(keyring) + "\n")
    pem_paths = [v for v in config.get("inbound", {}).values() if isinstance(v, str) and v.startswith("/etc/")]
    pem_paths += [config["tls"]["extra_ca_file"]] if "extra_ca_file" in config["tls"] else []
    if pem_paths:
        if not shutil.which("openssl"):
            raise Skip("openssl is needed to make test certificates")
        key, crt = tmp / "t.key", tmp / "t.crt"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", key, "-out", crt, "-days", "1", "-subj", "/CN=myinfo-proxy-test",
             "-addext", "subjectAltName=DNS:myinfo-proxy"],
            check=True, capture_output=True,
        )
        for p in pem_paths:
            dest = Path(p.replace("/etc/myinfo-proxy/", f"{etc}/"))
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(key if p.endswith(".key") else crt, dest)
    cfg = tmp / "config.toml"
    cfg.write_text(text)
    return cfg


def check_config_with_proxy(binary: Path, docs, tmp: Path) -> str:
    """`myinfo-proxy check-config` on the rendered config.toml; returns its report."""
    cfg = materialize(binary, docs, tmp)
    run = subprocess.run([binary, "check-config", "--config", cfg], capture_output=True, text=True)
    text = cfg.read_text()
    assert run.returncode == 0, (
        f"myinfo-proxy check-config refused the chart's config:\n{run.stdout}{run.stderr}\n"
        f"--- config.toml ---\n{text}"
    )
    return run.stdout


@case("myinfo-proxy check-config accepts every rendered config.toml")
def _():
    binary = proxy_binary()
    if binary is None:
        raise Skip("no myinfo-proxy binary (cargo build, or set MYINFO_PROXY_BIN)")
    cases = {
        "sidecar": render(merge(BASE)),
        "egress api-key": render(egress_values("api-key", False, False, True)),
        "egress mtls": render(egress_values("mtls", False, False, True)),
        "egress unauthenticated": render(egress_values("unauthenticated", False, False, True)),
    }
    every = egress_values("mtls", True, True, True, {
        "inbound": {"apiKeySha256": [API_KEY_HASH]},
        "keys": {"jwksKey": "jwks.json", "activeSigKid": ""},
        "config": {
            "tls": {"roots": "both", "extraCaConfigMap": {"name": "corp-ca"}},
            "rateLimit": {"global": {"perSecond": 50, "burst": 60}},
            "breaker": {"enabled": False, "failures": 10, "openFor": "1s", "maxOpenFor": "30s"},
            "listener": {"main": {"maxConnections": 256, "bodyTimeout": "5s"},
                         "admin": {"idleTimeout": "30s"}},
            "problemDocUrl": "https://runbooks.example.com/myinfo-proxy",
            "upstreams": [
                {"kind": "myinfo-v4", "baseUrl": "https://test.api.myinfo.gov.sg/com/v4",
                 "jwksUrl": "https://test.authorise.singpass.gov.sg/.well-known/keys.json",
                 "routes": {"person": {"decrypt": True, "retry": {"maxRetries": 0}},
                            "token": {"rateLimit": {"perSecond": 5, "burst": 5, "maxWait": "100ms"}}}},
                {"kind": "singpass-fapi", "issuer": "https://stg-id.singpass.gov.sg/fapi",
                 "routes": {"userinfo": {"decrypt": True},
                            "token": {"timeouts": {"attempt": "15s", "overall": "25s"}}}},
                {"kind": "singpass-ciba", "issuer": "https://stg-id.singpass.gov.sg"},
            ],
        },
    })
    cases["egress every option"] = render(every)
    cases["egress example"] = render(yaml.safe_load(EGRESS_EXAMPLE.read_text()))
    cases["egress redis example"] = render(yaml.safe_load(EGRESS_REDIS_EXAMPLE.read_text()))
    for form in REDIS:
        cases[f"egress redis {form}"] = render(egress_values("api-key", True, False, True, {"redis": REDIS[form]}))
    with tempfile.TemporaryDirectory() as tmp:
        cases["example app"] = render({}, chart=vendored_example(Path(tmp)), release="shop")
    for name, docs in cases.items():
        with tempfile.TemporaryDirectory() as tmp:
            out = check_config_with_proxy(binary, docs, Path(tmp))
            if name == "egress unauthenticated":
                assert "allow_unauthenticated" in out, f"no start-up warning for allowUnauthenticated:\n{out}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def wait_ready(proc: subprocess.Popen, admin_port: int, path: str, log: Path) -> None:
    """Polls the readiness path until it answers 200; fails at once if the proxy exits."""
    deadline = time.monotonic() + 15
    while True:
        try:
            if get(admin_port, path)[0] == 200:
                return
        except OSError:
            pass
        assert proc.poll() is None, f"the proxy exited: {log.read_text()}"
        assert time.monotonic() < deadline, f"{path} never answered 200"
        time.sleep(0.1)


def get(port: int, path: str, headers: dict | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        res = conn.getresponse()
        return res.status, res.read().decode(errors="replace")
    finally:
        conn.close()


@case("the proxy serves the chart's egress config: probes answer, API key enforced, SIGTERM drains")
def _():
    binary = proxy_binary()
    if binary is None:
        raise Skip("no myinfo-proxy binary (cargo build, or set MYINFO_PROXY_BIN)")
    http_port, admin_port = free_port(), free_port()
    values = egress_values("api-key", False, False, True, {
        "ports": {"http": http_port, "admin": admin_port},
        "config": {
            "drainTimeoutSeconds": 3,
            # On loopback, so that nothing leaves this machine; no request here goes upstream.
            "upstreams": [{"kind": "myinfo-v4", "baseUrl": f"http://127.0.0.1:{free_port()}/com/v4"}],
        },
    })
    docs = render(values)
    c = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    live, ready = c["livenessProbe"]["httpGet"]["path"], c["readinessProbe"]["httpGet"]["path"]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = materialize(binary, docs, Path(tmp))
        log = open(Path(tmp) / "proxy.log", "w+")
        proc = subprocess.Popen([binary, "serve", "--config", cfg], stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_ready(proc, admin_port, ready, Path(tmp) / "proxy.log")
            assert get(admin_port, live)[0] == 200, f"{live} is not 200"
            status, body = get(http_port, "/no-such-route")
            assert status == 401 and "AUTH_API_KEY_INVALID" in body, (status, body)
            status, body = get(http_port, "/no-such-route", {"X-Api-Key": API_KEY})
            assert status == 404, f"a valid API key was refused: {status} {body}"
            proc.send_signal(signal.SIGTERM)
            # Nothing in flight: the drain ends at once, well within drain_timeout.
            assert proc.wait(timeout=3 + 5) == 0, "the proxy did not exit 0 after SIGTERM"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()


# ---- the image ---------------------------------------------------------------------------------


@case("Dockerfile: runtime has the proxy's shared libraries, uid 65532, the chart's config path")
def _():
    dockerfile = (ROOT / "Dockerfile").read_text()
    runtime = dockerfile.rsplit("\nFROM ", 1)[1]
    assert runtime.startswith("debian:bookworm-slim"), "runtime stage changed: re-check its libraries"
    assert re.search(r"\blibssl3\b", runtime) and re.search(r"\bca-certificates\b", runtime)
    assert "USER 65532:65532" in runtime
    assert 'ENTRYPOINT ["/usr/local/bin/myinfo-proxy"]' in runtime
    assert 'CMD ["serve", "--config", "/etc/myinfo-proxy/config.toml"]' in runtime
    assert "cargo build --release --locked" in dockerfile
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert "target/" in ignore and ".git/" in ignore
    binary = proxy_binary()
    if binary and shutil.which("ldd"):
        # libssl3 (bookworm) ships libssl.so.3 and libcrypto.so.3; libc6/libgcc-s1 are in slim.
        in_slim = {"linux-vdso.so.1", "libc.so.6", "libm.so.6", "libgcc_s.so.1", "libpthread.so.0",
                   "libdl.so.2", "librt.so.1", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"}
        from_libssl3 = {"libssl.so.3", "libcrypto.so.3"}
        ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
        libs = {Path(line.split()[0]).name for line in ldd.splitlines() if line.strip()}
        unknown = libs - in_slim - from_libssl3
        assert not unknown, f"the binary needs libraries the runtime image may lack: {unknown}"
