"""The chart tests' harness: a small runner, rendering with Helm's library, validation against
the Kubernetes schemas, and the values every test starts from."""

from __future__ import annotations

import copy
import hashlib
import re
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import yaml
from kubernetes_validate import utils as kv_utils

try:
    import tomllib  # Python 3.11+
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "myinfo-proxy"
EXAMPLE = ROOT / "helm" / "examples" / "app"
EGRESS_EXAMPLE = ROOT / "helm" / "examples" / "egress-values.yaml"
EGRESS_REDIS_EXAMPLE = ROOT / "helm" / "examples" / "egress-redis-values.yaml"
CHART_README = CHART / "README.md"

# The chart's floor (Chart.yaml kubeVersion) and the newest schemas kubernetes-validate has.
KUBE_VERSIONS = sorted({"1.30.0", kv_utils.latest_version()})

KEY_SECRET = "myinfo-proxy-keys"
# An API key as `openssl rand -base64 32` makes it, and the hash the values hold.
API_KEY = "k9RrPzL4x0bT2vVq7mWc3nYs8aJd5eHf1gKu6iOp0lA="
API_KEY_HASH = hashlib.sha256(API_KEY.encode()).hexdigest()
UID = 65532

BASE = {"keys": {"existingSecret": KEY_SECRET}, "config": {"clientId": "STG-CHART-TEST"}}
AUTH = {
    "api-key": {"apiKeySha256": [API_KEY_HASH]},
    "mtls": {"mtls": {"existingSecret": "myinfo-proxy-tls"}},
    "unauthenticated": {"allowUnauthenticated": True},
}
APP_PEERS = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shop"}}}]
SINGPASS_CIDRS = ["203.0.113.0/24", "198.51.100.16/28"]
SEAL_SECRET = "myinfo-proxy-seal"
REDIS_URL_SECRET = "myinfo-proxy-redis"
# The two ways to name Redis: a URL without a password in values, or a Secret with the whole URL.
REDIS = {
    "url": {"url": "redis://redis-master.redis.svc.cluster.local:6379", "sealKeys": {"existingSecret": SEAL_SECRET}},
    "secret": {"existingSecret": REDIS_URL_SECRET, "sealKeys": {"existingSecret": SEAL_SECRET}},
}


# ---- a tiny runner ------------------------------------------------------------------------------

CASES: list[tuple[str, object]] = []


class Skip(Exception):
    """Raised by a test that cannot run here; reported, not counted as passed."""


def case(name):
    """Registers a test case under a name the report shows."""

    def register(fn):
        CASES.append((name, fn))
        return fn

    return register


def effective(values: dict) -> dict:
    """The values a render sees: the chart's defaults (values.yaml) under the given ones."""
    return merge(yaml.safe_load((CHART / "values.yaml").read_text()), values)


def merge(*layers: dict) -> dict:
    """Deep-merge value layers, later ones winning."""
    out: dict = {}
    for layer in layers:
        for key, val in layer.items():
            if isinstance(val, dict) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], val)
            else:
                out[key] = copy.deepcopy(val)
    return out


# ---- rendering and validation -------------------------------------------------------------------


def render(values: dict, chart: Path = CHART, release: str = "rel", namespace: str = "payments"):
    """Render a chart as `helm template` would (schema checked); returns the manifest dicts."""
    with helm.Chart.load(chart) as loaded:
        out = loaded.render(values, name=release, namespace=namespace, is_install=True)
    docs = []
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def render_notes(values: dict, release: str = "rel", namespace: str = "payments") -> str:
    """NOTES.txt as `helm install` prints it after rendering."""
    with helm.Chart.load(CHART) as loaded:
        out = loaded.render(values, name=release, namespace=namespace, is_install=True)
    (notes,) = [text for path, text in out.items() if path.endswith("NOTES.txt")]
    return notes


def kinds(docs) -> list[str]:
    return sorted(d["kind"] for d in docs)


def one(docs, kind: str) -> dict:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}: {kinds(docs)}"
    return found[0]


def validate_k8s(docs) -> None:
    """Every manifest against the Kubernetes schemas (strict: unknown fields fail). The
    ServiceMonitor is a CRD without a schema there; its shape is asserted instead."""
    for doc in docs:
        if doc["kind"] == "ServiceMonitor":
            assert_service_monitor_shape(doc)
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                where = ".".join(str(p) for p in e.path)
                raise AssertionError(
                    f"{doc['kind']}/{doc['metadata']['name']} is not valid Kubernetes "
                    f"{version}: {where}: {e.message}"
                ) from None


def assert_service_monitor_shape(sm: dict) -> None:
    assert sm["apiVersion"] == "monitoring.coreos.com/v1", sm["apiVersion"]
    spec = sm["spec"]
    assert spec["selector"]["matchLabels"], "ServiceMonitor selects nothing"
    assert spec["namespaceSelector"]["matchNames"] == [sm["metadata"]["namespace"]]
    (endpoint,) = spec["endpoints"]
    assert endpoint["port"] == "admin" and endpoint["path"] == "/metrics", endpoint
    assert re.fullmatch(r"\d+[smh]", endpoint["interval"]), endpoint


def config_of(docs) -> tuple[str, dict]:
    """The ConfigMap's config.toml, as text and parsed."""
    text = one(docs, "ConfigMap")["data"]["config.toml"]
    return text, tomllib.loads(text)


def seconds(duration: str) -> int:
    m = re.fullmatch(r"(\d+)s", duration)
    assert m, f"expected whole seconds, got {duration!r}"
    return int(m.group(1))
